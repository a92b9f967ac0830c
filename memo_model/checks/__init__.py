"""Checks that run before any model work: every input, option and model file at once
(`preflight`), model files by their headers (`model_files`), names read from files or given by
users that must stay inside their folder (`paths`). Each problem is one line naming the option or
file and what to do."""
