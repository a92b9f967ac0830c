"""MEMO node pack for ComfyUI (memoavatar/memo, arXiv 2412.04448).

ComfyUI imports this folder as a package (custom_nodes/<folder>) and registers the nodes through
the V3 extension entry point `comfy_entrypoint` (nodes/extension.py). It stays cheap: no torch,
diffusers or model loading here (nodes import them when they run) and no downloads, ever, at
import. The nodes reach the library through this package (`from ..memo_model import ...`), so
two installed copies of the pack never share or shadow each other's `memo_model`.

A ComfyUI without the V3 node API `comfy_api.v0_0_2` (older than 0.3.48; the nodes are tested from
0.3.64), or a plain Python, gets one log line naming the minimum version and no nodes; ComfyUI's
start-up goes on.
"""
import logging

# the canvas side of the nodes (audio player on MEMO Load Audio, video and info on the output nodes) and the
# nodes' help pages (web/docs); ComfyUI serves it for packs registered either way
WEB_DIRECTORY = "./web"

if __package__:  # pytest may also import this file on its own while collecting tests/: nothing to register then
    from .nodes.host import NodeApiMissing, register_model_folder

    try:
        from .nodes.extension import comfy_entrypoint
    except NodeApiMissing as missing:
        logging.getLogger("memo.nodes").error("MEMO: %s", missing)
        __all__ = ["WEB_DIRECTORY"]
    else:
        from .nodes.examples import install_example_inputs
        from .nodes.host.node_api import warn_if_untested

        warn_if_untested(logging.getLogger("memo.nodes"))
        register_model_folder()
        install_example_inputs()      # example portrait + voice into ComfyUI's input folder, only where absent

        __all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
