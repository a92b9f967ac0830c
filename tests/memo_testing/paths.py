"""Where things are, for every test module wherever it sits in tests/ (no counting of parent folders)."""
import os
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
DATA = TESTS / "data"
SHARED = Path(os.environ.get("MEMO_SHARED_DIR", REPO.parent / "shared"))
PARITY = SHARED / "parity"
