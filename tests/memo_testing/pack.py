"""Import this checkout as a ComfyUI pack would be imported: a package, whatever the folder's name.

ComfyUI imports `custom_nodes/<folder>/__init__.py` as package `<folder>` (hyphens and all) and the
nodes reach the library relatively (`..memo_model`). The tests do the same under the fixed name
`memo_pack`, so they pass from any clone folder name.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACK_NAME = "memo_pack"


def load_pack(standin: bool = True):
    """The pack package (`memo_pack`, with `.nodes` and `.memo_model`), imported once; its nodes
    run on the tests' stand-in host (memo_testing.standin_host) unless `standin` is False."""
    if PACK_NAME in sys.modules:
        return _with_host(sys.modules[PACK_NAME], standin)
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
