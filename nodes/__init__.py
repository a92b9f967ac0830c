"""ComfyUI nodes for MEMO (talking-head video diffusion). Heavy work lives in `memo_model`.

Each node class is a V3 `io.ComfyNode` (ComfyUI's numbered node API `comfy_api.v0_0_2`, see
`host.node_api`) that only declares its schema and calls one plain function (the `ops_*`
modules, over the library's stages), so the node functions run without ComfyUI when a host is
installed (`host`, the one place that talks to ComfyUI). ComfyUI registers the classes through
the extension entry point in `extension` (exported by the pack's `__init__.py`).

This package itself imports nothing, so its plain parts (`host`, `ops_*`, `values`) load without
ComfyUI; importing a node module (or `extension`) needs the V3 API. Importing the nodes is cheap:
torch, diffusers and ComfyUI's runtime are imported only when a node runs.
"""
