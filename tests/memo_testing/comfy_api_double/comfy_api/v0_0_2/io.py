"""Test double of `comfy_api.v0_0_2.io`: the parts of ComfyUI's V3 node schema the MEMO pack uses.

What it must reproduce is what ComfyUI derives from a schema, because the tests read it:

* the V1 view of a node (`INPUT_TYPES()`, `RETURN_TYPES`, `RETURN_NAMES`, `OUTPUT_TOOLTIPS`,
  `OUTPUT_NODE`, `CATEGORY`, `DESCRIPTION`) and the node's `/object_info` entry
  (`GET_NODE_INFO_V1()`), which the frontend builds the node from: each input as
  `(type, options)` under "required" / "optional" (options without None values; a combo's type is
  "COMBO" with its values under "options"), output names from the outputs' display names, and for
  an output node the hidden inputs PROMPT and EXTRA_PNGINFO that ComfyUI adds;
* `NodeOutput` (positional outputs, `ui=`), which the executor unpacks.

tests/comfyui/test_real_comfyui.py checks the first point against a real server node by node.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


def _without_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


class Hidden(str, Enum):
    """Values the executor passes to a node besides its inputs (`cls.hidden.<name>`)."""

    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"


# --------------------------------------------------------------------------- inputs and outputs

class Input:
    """A socket input (a link from another node's output)."""

    io_type = "*"

    def __init__(self, id: str, display_name: str = None, optional: bool = False, tooltip: str = None,
                 lazy: bool = None):
        self.id, self.display_name, self.optional, self.tooltip, self.lazy = id, display_name, optional, tooltip, lazy

    def v1_type(self):
        return self.io_type

    def options(self) -> dict:
        """The options dict of the V1 view (what /object_info shows after the type)."""
        return _without_none({"display_name": self.display_name, "tooltip": self.tooltip, "lazy": self.lazy})


class WidgetInput(Input):
    """An input with a widget on the node (a link can still replace it)."""

    def __init__(self, id: str, display_name: str = None, optional: bool = False, tooltip: str = None,
                 lazy: bool = None, default: Any = None, socketless: bool = None, force_input: bool = None):
        super().__init__(id, display_name, optional, tooltip, lazy)
        self.default, self.socketless, self.force_input = default, socketless, force_input

    def options(self) -> dict:
        return super().options() | _without_none({"default": self.default, "socketless": self.socketless,
                                                  "forceInput": self.force_input})


class Output:
    io_type = "*"

    def __init__(self, id: str = None, display_name: str = None, tooltip: str = None, is_output_list: bool = False):
        self.id, self.display_name, self.tooltip, self.is_output_list = id, display_name, tooltip, is_output_list


def _socket_type(io_type: str, input_base=Input):
    """A type namespace with its Input and Output classes bound to `io_type` (as ComfyUI's io.<Type>)."""
    return type(io_type, (), {
        "io_type": io_type,
        "Input": type("Input", (input_base,), {"io_type": io_type}),
        "Output": type("Output", (Output,), {"io_type": io_type}),
    })


def Custom(io_type: str):
    """A socket type of the pack's own (its name is what workflows store in their links)."""
    return _socket_type(io_type)


Image = _socket_type("IMAGE")
Audio = _socket_type("AUDIO")
Vae = _socket_type("VAE")
Video = _socket_type("VIDEO")


class Boolean(_socket_type("BOOLEAN")):
    class Input(WidgetInput):
        io_type = "BOOLEAN"

        def __init__(self, id: str, display_name: str = None, optional: bool = False, tooltip: str = None,
                     lazy: bool = None, default: bool = None, label_on: str = None, label_off: str = None,
                     socketless: bool = None, force_input: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, force_input)
            self.label_on, self.label_off = label_on, label_off

        def options(self) -> dict:
            return super().options() | _without_none({"label_on": self.label_on, "label_off": self.label_off})


class Int(_socket_type("INT")):
    class Input(WidgetInput):
        io_type = "INT"

        def __init__(self, id: str, display_name: str = None, optional: bool = False, tooltip: str = None,
                     lazy: bool = None, default: int = None, min: int = None, max: int = None, step: int = None,
                     control_after_generate: bool = None, display_mode=None, socketless: bool = None,
                     force_input: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, force_input)
            self.min, self.max, self.step = min, max, step
            self.control_after_generate, self.display_mode = control_after_generate, display_mode

        def options(self) -> dict:
            return super().options() | _without_none({
                "min": self.min, "max": self.max, "step": self.step,
                "control_after_generate": self.control_after_generate, "display": self.display_mode})


class Float(_socket_type("FLOAT")):
    class Input(WidgetInput):
        io_type = "FLOAT"

        def __init__(self, id: str, display_name: str = None, optional: bool = False, tooltip: str = None,
                     lazy: bool = None, default: float = None, min: float = None, max: float = None,
                     step: float = None, round: float = None, display_mode=None, socketless: bool = None,
                     force_input: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, force_input)
            self.min, self.max, self.step, self.round, self.display_mode = min, max, step, round, display_mode

        def options(self) -> dict:
            return super().options() | _without_none({"min": self.min, "max": self.max, "step": self.step,
                                                      "round": self.round, "display": self.display_mode})


class String(_socket_type("STRING")):
    class Input(WidgetInput):
        io_type = "STRING"

        def __init__(self, id: str, display_name: str = None, optional: bool = False, tooltip: str = None,
                     lazy: bool = None, multiline: bool = False, placeholder: str = None, default: str = None,
                     dynamic_prompts: bool = None, socketless: bool = None, force_input: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, force_input)
            self.multiline, self.placeholder, self.dynamic_prompts = multiline, placeholder, dynamic_prompts

        def options(self) -> dict:
            # multiline is always sent (False by default), the other two only when given
            return super().options() | _without_none({"multiline": self.multiline, "placeholder": self.placeholder,
                                                      "dynamicPrompts": self.dynamic_prompts})


class Combo(_socket_type("COMBO")):
    class Input(WidgetInput):
        """A dropdown: type "COMBO" in the V1 view, its values under "options"."""

        io_type = "COMBO"

        def __init__(self, id: str, options: list = None, display_name: str = None, optional: bool = False,
                     tooltip: str = None, lazy: bool = None, default: Any = None,
                     control_after_generate: bool = None, upload=None, image_folder=None, remote=None,
                     socketless: bool = None):
            if isinstance(options, type) and issubclass(options, Enum):
                options = [member.value for member in options]
            if isinstance(default, Enum):
                default = default.value
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless)
            self.values, self.control_after_generate = options, control_after_generate
            if upload is not None or image_folder is not None or remote is not None:
                raise NotImplementedError("the double has no upload / image_folder / remote combos (the pack uses "
                                          "none: web/js adds MEMO Load Audio's upload button)")

        def options(self) -> dict:
            return super().options() | _without_none({"multiselect": False, "options": self.values,
                                                      "control_after_generate": self.control_after_generate})


# --------------------------------------------------------------------------- the schema and the node

@dataclass
class Schema:
    node_id: str
    display_name: str = None
    category: str = "sd"
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    hidden: list = field(default_factory=list)
    description: str = ""
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_api_node: bool = False
    not_idempotent: bool = False
    enable_expand: bool = False

    def finalize(self) -> "Schema":
        """What ComfyUI adds: the hidden inputs of output nodes, ids for outputs without one."""
        self.inputs, self.outputs, self.hidden = list(self.inputs or []), list(self.outputs or []), \
            list(self.hidden or [])
        if self.is_output_node:
            self.hidden += [h for h in (Hidden.prompt, Hidden.extra_pnginfo) if h not in self.hidden]
        for i, output in enumerate(self.outputs):
            if output.id is None:
                output.id = f"_{i}_{output.io_type}_"
        return self

    def validate(self) -> None:
        input_ids = [i.id for i in self.inputs]
        output_ids = [o.id for o in self.outputs]
        for what, ids in (("Input", input_ids), ("Output", output_ids)):
            if len(set(ids)) != len(ids):
                raise ValueError(f"{what} ids must be unique, but {sorted({i for i in ids if ids.count(i) > 1})} "
                                 "are not.")

    def v1_inputs(self) -> dict:
        view: dict = {"required": {}}
        for i in self.inputs:
            view.setdefault("optional" if i.optional else "required", {})[i.id] = (i.v1_type(), i.options())
        for h in self.hidden:
            view.setdefault("hidden", {})[h.name] = (h.value,)
        return view


class _classproperty:
    def __init__(self, getter):
        self.getter = getter

    def __get__(self, instance, owner):
        return self.getter(owner)


class ComfyNode:
    """A V3 node: classmethods only (ComfyUI runs each call on a fresh clone of the class)."""

    RELATIVE_PYTHON_MODULE = None
    hidden = None

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError(f"{cls.__name__} defines no define_schema")

    @classmethod
    def execute(cls, **kwargs) -> "NodeOutput":
        raise NotImplementedError(f"{cls.__name__} defines no execute")

    @classmethod
    def validate_inputs(cls, **kwargs):
        raise NotImplementedError

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        raise NotImplementedError

    @classmethod
    def GET_SCHEMA(cls) -> Schema:
        schema = cls.define_schema().finalize()
        schema.validate()
        return schema

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return cls.GET_SCHEMA().v1_inputs()

    @classmethod
    def GET_NODE_INFO_V1(cls) -> dict:
        """The node's /object_info entry."""
        s = cls.GET_SCHEMA()
        inputs = s.v1_inputs()
        return {
            "input": inputs, "input_order": {section: list(entries) for section, entries in inputs.items()},
            "output": [o.io_type for o in s.outputs], "output_is_list": [o.is_output_list for o in s.outputs],
            "output_name": [o.display_name or o.io_type for o in s.outputs],
            "output_tooltips": [o.tooltip or None for o in s.outputs],
            "name": s.node_id, "display_name": s.display_name, "description": s.description,
            "python_module": getattr(cls, "RELATIVE_PYTHON_MODULE", None) or "nodes", "category": s.category,
            "output_node": s.is_output_node, "deprecated": s.is_deprecated, "experimental": s.is_experimental,
            "api_node": s.is_api_node,
        }

    RETURN_TYPES = _classproperty(lambda cls: [o.io_type for o in cls.GET_SCHEMA().outputs])
    RETURN_NAMES = _classproperty(lambda cls: [o.display_name or o.io_type for o in cls.GET_SCHEMA().outputs])
    OUTPUT_TOOLTIPS = _classproperty(lambda cls: [o.tooltip or None for o in cls.GET_SCHEMA().outputs])
    OUTPUT_IS_LIST = _classproperty(lambda cls: [o.is_output_list for o in cls.GET_SCHEMA().outputs])
    OUTPUT_NODE = _classproperty(lambda cls: cls.GET_SCHEMA().is_output_node)
    CATEGORY = _classproperty(lambda cls: cls.GET_SCHEMA().category)
    DESCRIPTION = _classproperty(lambda cls: cls.GET_SCHEMA().description)


class NodeOutput:
    """A node's result: its outputs in order, and what the canvas shows (`ui`)."""

    def __init__(self, *args: Any, ui: dict = None, expand: dict = None, block_execution: str = None):
        self.args, self.ui, self.expand, self.block_execution = args, ui, expand, block_execution

    @property
    def result(self):
        return self.args if self.args else None

    def __getitem__(self, index):
        return self.args[index]


__all__ = ["Hidden", "Input", "WidgetInput", "Output", "Custom", "Image", "Audio", "Vae", "Video", "Boolean", "Int",
           "Float", "String", "Combo", "Schema", "ComfyNode", "NodeOutput"]
