"""Test double of ComfyUI's `comfy_api` package: only the numbered V3 node API `v0_0_2` (see README.md)."""
DOUBLE = True           # real ComfyUI has no such name: lets a test check which comfy_api it imported
