"""The MEMO networks, config-driven, with the official checkpoint's state-dict names.

`build_network(name, config)` builds any of them from its official `config.json`;
`loading.load_networks(folder)` loads the four generation networks from a checkpoint folder.
"""
from .build import NETWORK_NAMES, build_network

__all__ = ["NETWORK_NAMES", "build_network"]
