"""Import this checkout as a ComfyUI pack would be imported: a package, whatever the folder's name.

ComfyUI imports `custom_nodes/<folder>/__init__.py` as package `<folder>` (hyphens and all) and the
nodes reach the library relatively (`..memo_model`). The tests do the same under the fixed name
`memo_pack`, so they pass from any clone folder name. The node classes are declared with ComfyUI's
V3 node API (`comfy_api.v0_0_2`), which CI does not have: the tests' double of it
(`comfy_api_double/`, see its README) goes first on `sys.path` before the pack is imported.
"""
from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACK_NAME = "memo_pack"
API_DOUBLE = Path(__file__).resolve().parent / "comfy_api_double"


def use_api_double() -> None:
    """Make `comfy_api.v0_0_2` the tests' double (refusing to mix it with a real ComfyUI's comfy_api)."""
    if str(API_DOUBLE) not in sys.path:
        sys.path.insert(0, str(API_DOUBLE))
    import comfy_api

    if not getattr(comfy_api, "DOUBLE", False):
        raise RuntimeError(f"a real comfy_api ({comfy_api.__file__}) is already imported; the in-process tests use "
                           f"the double in {API_DOUBLE}")


def load_pack(standin: bool = True):
    """The pack package (`memo_pack`, with `.nodes` and `.memo_model`), imported once; its nodes
    run on the tests' stand-in host (memo_testing.standin_host) unless `standin` is False."""
    if PACK_NAME in sys.modules:
        return _with_host(sys.modules[PACK_NAME], standin)
    use_api_double()
    spec = importlib.util.spec_from_file_location(PACK_NAME, REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = pack
    try:
        spec.loader.exec_module(pack)
    except BaseException:
        del sys.modules[PACK_NAME]
        raise
    return _with_host(pack, standin)


def _with_host(pack, standin: bool):
    if standin:
        from .standin_host import install_standin

        install_standin(pack)
    return pack


def registered_nodes(pack=None) -> list:
    """The node classes as ComfyUI gets them: through the pack's extension entry point."""
    pack = pack or load_pack()

    async def node_list():
        extension = await pack.comfy_entrypoint()
        return await extension.get_node_list()

    return asyncio.run(node_list())


def node_classes(pack=None) -> dict:
    """{node id: class}, each class under its schema's node_id (what workflows name in class_type)."""
    return {cls.GET_SCHEMA().node_id: cls for cls in registered_nodes(pack)}


def display_names(pack=None) -> dict:
    """{node id: display name} (ComfyUI shows the schema's display_name)."""
    return {cls.GET_SCHEMA().node_id: cls.GET_SCHEMA().display_name for cls in registered_nodes(pack)}
