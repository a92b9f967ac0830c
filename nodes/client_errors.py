"""What an error looks like when it leaves a node: a builtin exception with a clean message.

ComfyUI sends an API client (and the canvas) the failing node's exception type and message. The
library's own exceptions (JobError, PreflightError, AudioInputError, ...) would reach it as
`<the pack's folder on the server>.memo_model.job.JobError`, because ComfyUI names a custom
pack's modules by their path; and messages from the library name files by their absolute paths.
`for_clients` wraps a node's `execute`: such an error is raised again as its nearest builtin type
(ValueError, FileNotFoundError, RuntimeError, ...) with the folders written as users know them
("output/MEMO/x.mp4", see host.public_text), chained to the original for the server log.
ComfyUI's own exceptions (the cancel) and everything else pass through unchanged.
"""
from __future__ import annotations

import functools

from . import host

_PACKAGE = __name__.rsplit(".", 2)[0]        # the pack's package (its folder name inside ComfyUI)


def _builtin_base(exc_type: type) -> type:
    for cls in exc_type.__mro__:
        if cls.__module__ == "builtins" and issubclass(cls, Exception):
            return cls
    return RuntimeError


def public_error(exc: BaseException):
    """The exception a client should see for `exc`, or None when `exc` is fine as it is."""
    if not isinstance(exc, Exception):
        return None                          # KeyboardInterrupt, SystemExit: never touched
    module = type(exc).__module__ or ""
    ours = module.startswith((_PACKAGE + ".", "memo_model."))
    builtin = module == "builtins"
    if not (ours or builtin):
        return None                          # ComfyUI's interrupt, torch's out-of-memory, ...
    text = str(exc)
    clean = host.public_text(text)
    if builtin and clean == text:
        return None
    base = _builtin_base(type(exc))
    try:
        return base(clean)
    except TypeError:                        # a builtin with another constructor
        return RuntimeError(clean)


def for_clients(execute):
    """Decorate a node's `execute` (inside @classmethod): see the module docstring."""
    @functools.wraps(execute)
    def wrapped(cls, *args, **kwargs):
        try:
            return execute(cls, *args, **kwargs)
        except Exception as exc:
            clean = public_error(exc)
            if clean is None:
                raise
            raise clean from exc
    return wrapped


__all__ = ["for_clients", "public_error"]
