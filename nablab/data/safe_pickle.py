"""A pickle reader that builds only plain containers and NumPy numeric arrays.

The CIFAR-10 python batches are pickles written by Python 2: dicts, lists,
byte strings and ints, plus one NumPy ``uint8`` array per batch. An array is
pickled as a call to NumPy's ``_reconstruct`` with ``ndarray`` and a
``dtype``, so those three globals are the only ones this unpickler resolves.
Any other global (``os.system``, ``builtins.eval``, ``subprocess.Popen``,
...) is refused *before* anything is called, so a malicious file raises
:class:`UnsafePickleError` and executes nothing. Persistent ids are refused
too. Even the allowed callables are wrapped: ``_reconstruct`` builds only
plain ``ndarray`` objects and ``dtype`` only numeric types (no object
arrays, whose elements would be arbitrary Python objects).

>>> import io, pickle, numpy as np
>>> blob = pickle.dumps({b"data": np.arange(4, dtype=np.uint8), b"labels": [1, 2]}, protocol=3)
>>> restricted_loads(blob)
{b'data': array([0, 1, 2, 3], dtype=uint8), b'labels': [1, 2]}

Python 3 writes ``bytes`` at protocols 0-2 as calls to ``_codecs.encode``,
which is not on the list (Python 2's files, like CIFAR-10's, do not need it):

>>> blob = pickle.dumps({b"data": np.arange(4, dtype=np.uint8), b"labels": [1, 2]}, protocol=2)
>>> restricted_loads(blob)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
nablab.data.safe_pickle.UnsafePickleError: refused to load the global _codecs.encode ...
"""

from __future__ import annotations

import io
import pickle

import numpy as np

__all__ = ["UnsafePickleError", "RestrictedUnpickler", "restricted_load", "restricted_loads",
           "ALLOWED_GLOBALS"]

#: The only (module, name) pairs a pickle may name.
ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),   # NumPy 1.x and the files written by Python 2
    ("numpy._core.multiarray", "_reconstruct"),  # NumPy 2.x
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
})

_NUMERIC_KINDS = "biufc"


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for something the restricted unpickler does not build."""


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


_RECONSTRUCT = _numpy_reconstruct()


def _numeric_dtype(spec, who: str) -> np.dtype:
    if isinstance(spec, bytes):
        spec = spec.decode("ascii")
    if not isinstance(spec, (str, np.dtype)):
        raise UnsafePickleError(f"{who}: dtype spec {spec!r} ({type(spec).__name__}) is not a string")
    dtype = np.dtype(spec)
    if dtype.kind not in _NUMERIC_KINDS or dtype.hasobject or dtype.fields is not None:
        raise UnsafePickleError(f"{who}: refused dtype {dtype!r}; only numeric dtypes are allowed")
    return dtype


def _safe_reconstruct(subtype, shape, dtype_spec):
    """``numpy``'s ``_reconstruct``, for plain ndarrays of numeric dtype only."""
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"_reconstruct: refused array subtype {subtype!r}; only numpy.ndarray")
    return _RECONSTRUCT(np.ndarray, shape, _numeric_dtype(dtype_spec, "_reconstruct"))


def _safe_dtype(spec, align=False, copy=True):
    """``numpy.dtype`` for numeric types only, always a fresh copy.

    The pickle's BUILD step then sets the byte order through ``__setstate__``;
    a copy keeps that from ever touching NumPy's shared built-in dtypes.
    """
    return np.dtype(_numeric_dtype(spec, "dtype"), bool(align), True)


_RESOLVED = {
    ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _safe_dtype,
}
assert set(_RESOLVED) == ALLOWED_GLOBALS


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` resolves only :data:`ALLOWED_GLOBALS`.

    Use ``encoding="bytes"`` for pickles written by Python 2 (their ``str``
    objects arrive as ``bytes``); that is the default here.
    """

    def __init__(self, file, *, encoding: str = "bytes", source: str = "<pickle>"):
        super().__init__(file, encoding=encoding)
        self.source = source

    def find_class(self, module, name):
        key = (module, name)
        if key not in _RESOLVED:
            raise UnsafePickleError(
                f"refused to load the global {module}.{name} from {self.source}: only "
                f"{', '.join(sorted(f'{m}.{n}' for m, n in ALLOWED_GLOBALS))} are allowed, "
                "so this is not a plain data pickle"
            )
        return _RESOLVED[key]

    def persistent_load(self, pid):
        raise UnsafePickleError(f"refused persistent id {pid!r} in {self.source}")


def restricted_load(file, *, encoding: str = "bytes", source: str = "<pickle>"):
    """Read one pickle from a binary file with :class:`RestrictedUnpickler`."""
    return RestrictedUnpickler(file, encoding=encoding, source=source).load()


def restricted_loads(data: bytes, *, encoding: str = "bytes", source: str = "<pickle>"):
    """Read one pickle from bytes with :class:`RestrictedUnpickler`."""
    return restricted_load(io.BytesIO(data), encoding=encoding, source=source)
