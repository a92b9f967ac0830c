"""``python -m memo_model``: see :mod:`memo_model.cli` (``--help`` lists every option)."""
from .cli import main

raise SystemExit(main())
