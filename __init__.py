"""MEMO node pack for ComfyUI (memoavatar/memo, arXiv 2412.04448).

ComfyUI imports this file from custom_nodes/<this folder>/. It stays cheap: no torch, diffusers
or model loading here (nodes import them when they run) and no downloads, ever, at import.
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
# The model code is the top-level package `memo_model` next to this file (also used by the CLI).
if _HERE not in sys.path:
    sys.path.append(_HERE)

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402
from .nodes.examples import install_example_inputs  # noqa: E402
from .nodes.host import register_model_folder  # noqa: E402

register_model_folder()
install_example_inputs()      # example portrait + voice into ComfyUI's input folder, only where absent

# the canvas side of the nodes (audio player on MEMO Load Audio, video and info on the output nodes)
WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
