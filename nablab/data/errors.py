"""The error every data loader raises when its files are missing or unusable."""

from __future__ import annotations

__all__ = ["DataNotFoundError"]


class DataNotFoundError(FileNotFoundError):
    """Data that is missing, corrupt or not in the expected format.

    A subclass of :class:`FileNotFoundError`, so ``except FileNotFoundError``
    catches it too. The message says what is wrong, at which path, and how
    to supply the files.

    >>> issubclass(DataNotFoundError, FileNotFoundError)
    True
    >>> str(DataNotFoundError("no file at /tmp/x"))
    'no file at /tmp/x'
    """
