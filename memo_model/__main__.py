"""``python -m memo_model``: see :mod:`memo_model.apps.cli` (``--help`` lists every option)."""
from .apps.cli import main

raise SystemExit(main())
