"""Helpers shared by the test modules (importable because pytest.ini puts `tests/` on the path)."""
