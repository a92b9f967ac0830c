"""Checks that run before any model work: every input, option and model file at once
(`preflight`), model files by their headers (`model_files`). Each problem is one line naming the
option or file and what to do."""
