"""MEMO node pack for ComfyUI (memoavatar/memo, arXiv 2412.04448).

ComfyUI imports this folder as a package (custom_nodes/<folder>). It stays cheap: no torch,
diffusers or model loading here (nodes import them when they run) and no downloads, ever, at
import. The nodes reach the library through this package (`from ..memo_model import ...`), so
two installed copies of the pack never share or shadow each other's `memo_model`.
"""
# the canvas side of the nodes (audio player on MEMO Load Audio, video and info on the output nodes)
WEB_DIRECTORY = "./web"

if __package__:  # pytest may also import this file on its own while collecting tests/: nothing to register then
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
    from .nodes.examples import install_example_inputs
    from .nodes.host import register_model_folder

    register_model_folder()
    install_example_inputs()      # example portrait + voice into ComfyUI's input folder, only where absent

    __all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
