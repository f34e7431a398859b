"""A pickle reader that builds only plain containers and NumPy numeric arrays.

The CIFAR-10 python batches are pickles written by Python 2: dicts, lists,
byte strings and ints, plus one NumPy ``uint8`` array per batch. An array is
pickled as a call to NumPy's ``_reconstruct`` with ``ndarray`` and a
``dtype``, so those three globals are the only ones this unpickler resolves.
Any other global (``os.system``, ``builtins.eval``, ``subprocess.Popen``,
...) is refused *before* anything is called, so a malicious file raises
:class:`UnsafePickleError` and executes nothing. Persistent ids are refused
too, and so are the opcodes that build class instances (INST, OBJ, NEWOBJ,
NEWOBJ_EX). Even the allowed globals are wrapped: ``_reconstruct`` builds
only an empty plain ``ndarray``, ``dtype`` only plain numeric types
(bool, int and uint of 1-8 bytes, float of 2-8, complex of 8-16; never
object, void, structured, string or datetime types), and ``ndarray`` itself
cannot be called. The state a pickle then sets (its BUILD opcode) is checked
before NumPy sees it: a dtype may only get its byte order (never flags such
as ``hasobject``, fields or a subarray), and an array only a plain numeric
dtype and exactly ``shape * itemsize`` bytes of data.

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
nablab.errors.UnsafePickleError: refused to load the global _codecs.encode ...
"""

from __future__ import annotations

import io
import math
import pickle

import numpy as np

from nablab.errors import UnsafePickleError

__all__ = ["UnsafePickleError", "RestrictedUnpickler", "restricted_load", "restricted_loads",
           "ALLOWED_GLOBALS"]

#: The only (module, name) pairs a pickle may name.
ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),   # NumPy 1.x and the files written by Python 2
    ("numpy._core.multiarray", "_reconstruct"),  # NumPy 2.x
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
})

#: Plain dtypes by kind: the item sizes allowed.
_PLAIN_SIZES = {"b": (1,), "i": (1, 2, 4, 8), "u": (1, 2, 4, 8), "f": (2, 4, 8), "c": (8, 16)}


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


_RECONSTRUCT = _numpy_reconstruct()


def _check_plain(dtype: np.dtype, who: str) -> np.dtype:
    """``dtype`` if it is a plain number type with no flags, fields or subarray."""
    if (dtype.itemsize not in _PLAIN_SIZES.get(dtype.kind, ()) or dtype.hasobject or dtype.flags
            or dtype.fields is not None or dtype.subdtype is not None or dtype.metadata):
        raise UnsafePickleError(f"{who}: refused dtype {dtype!r}; only plain bool, int, uint, float and "
                                "complex dtypes are allowed")
    return dtype


def _numeric_dtype(spec, who: str) -> np.dtype:
    if isinstance(spec, bytes):
        spec = spec.decode("ascii")
    if not isinstance(spec, str):
        raise UnsafePickleError(f"{who}: dtype spec {spec!r} ({type(spec).__name__}) is not a string")
    try:
        dtype = np.dtype(spec)
    except (TypeError, ValueError) as exc:
        raise UnsafePickleError(f"{who}: dtype spec {spec!r} is not understood ({exc})") from None
    return _check_plain(dtype, who)


class _NdarrayName:
    """What the global ``numpy.ndarray`` resolves to: a name for ``_reconstruct``, never callable."""

    def __call__(self, *args, **kwargs):
        raise UnsafePickleError("refused a call to numpy.ndarray; arrays are only rebuilt by _reconstruct")

    def __repr__(self):
        return "numpy.ndarray"


_NDARRAY = _NdarrayName()


def _safe_reconstruct(subtype, shape, dtype_spec):
    """``numpy``'s ``_reconstruct``: an empty plain ndarray of numeric dtype, filled later by BUILD."""
    if subtype is not _NDARRAY:
        raise UnsafePickleError(f"_reconstruct: refused array subtype {subtype!r}; only numpy.ndarray")
    if not _is_shape(shape) or math.prod(shape) != 0:
        raise UnsafePickleError(f"_reconstruct: refused shape {shape!r}; NumPy pickles start from an empty array")
    return _RECONSTRUCT(np.ndarray, shape, _numeric_dtype(dtype_spec, "_reconstruct"))


def _safe_dtype(spec, align=False, copy=True):
    """``numpy.dtype`` for numeric types only, always a fresh copy.

    The pickle's BUILD step then sets the byte order through ``__setstate__``;
    a copy keeps that from ever touching NumPy's shared built-in dtypes.
    """
    return np.dtype(_numeric_dtype(spec, "dtype"), bool(align), True)


def _is_shape(shape) -> bool:
    return isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)


def _check_dtype_state(dtype: np.dtype, state) -> None:
    """A dtype's pickled state may set its byte order, and nothing else."""
    if not isinstance(state, tuple) or len(state) not in (8, 9):
        raise UnsafePickleError(f"refused dtype state {state!r}: not a version 3 or 4 NumPy dtype state")
    version, order, subarray, names, fields, elsize, alignment, flags = state[:8]
    metadata = state[8] if len(state) == 9 else None
    if isinstance(order, bytes):
        order = order.decode("latin-1")
    problems = [f"{what} {value!r}" for what, value, ok in [
        ("version", version, version in (3, 4)),
        ("byte order", order, order in ("<", ">", "|", "=")),
        ("subarray", subarray, subarray is None),
        ("field names", names, names is None),
        ("fields", fields, fields is None),
        ("item size", elsize, elsize in (-1, dtype.itemsize)),
        ("alignment", alignment, alignment in (-1, dtype.alignment)),
        ("flags", flags, flags == 0 and type(flags) is int),  # 0 for plain types; object dtypes carry 63
        ("metadata", metadata, metadata is None),
    ] if not ok]
    if problems:
        raise UnsafePickleError(f"refused dtype state for {dtype}: it sets {', '.join(problems)}")


def _check_array_state(state) -> None:
    """An array's pickled state: a plain dtype and exactly shape * itemsize bytes."""
    if not isinstance(state, tuple) or len(state) not in (4, 5) or (len(state) == 5 and state[0] != 1):
        raise UnsafePickleError(f"refused array state of type {type(state).__name__}: not a NumPy array state")
    shape, dtype, fortran, raw = state[-4:]
    if not isinstance(dtype, np.dtype):
        raise UnsafePickleError(f"refused array state: its dtype is a {type(dtype).__name__}")
    _check_plain(dtype, "array state")
    if not _is_shape(shape):
        raise UnsafePickleError(f"refused array state: shape {shape!r} is not a tuple of non-negative ints")
    if not isinstance(raw, (bytes, str)):  # object arrays carry a list here
        raise UnsafePickleError(f"refused array state: its data is a {type(raw).__name__}, not bytes")
    if len(raw) != math.prod(shape) * dtype.itemsize:
        raise UnsafePickleError(f"refused array state: shape {shape} of {dtype} needs "
                                f"{math.prod(shape) * dtype.itemsize} bytes, the pickle holds {len(raw)}")
    if fortran not in (0, 1):
        raise UnsafePickleError(f"refused array state: Fortran flag {fortran!r}")


_RESOLVED = {
    ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _safe_dtype,
}
assert set(_RESOLVED) == ALLOWED_GLOBALS


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler whose ``find_class`` resolves only :data:`ALLOWED_GLOBALS`.

    It is the pure-Python unpickler, so that the BUILD opcode (which calls
    ``__setstate__``) can be checked before it runs; the C unpickler calls
    it directly. Use ``encoding="bytes"`` for pickles written by Python 2
    (their ``str`` objects arrive as ``bytes``); that is the default here.
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

    def _load_build(self):
        state, inst = self.stack[-1], self.stack[-2]
        try:
            if isinstance(inst, np.dtype):
                _check_dtype_state(inst, state)
            elif type(inst) is np.ndarray:
                _check_array_state(state)
            else:
                raise UnsafePickleError(f"refused to set the state of a {type(inst).__name__} (BUILD)")
        except UnsafePickleError as exc:
            raise UnsafePickleError(f"{exc} (in {self.source})") from None
        pickle._Unpickler.load_build(self)

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = _load_build


def _refuser(opcode: str):
    def refuse(self):
        raise UnsafePickleError(f"refused opcode {opcode} in {self.source}: it builds class instances")
    return refuse


for _name in ("INST", "OBJ", "NEWOBJ", "NEWOBJ_EX"):
    RestrictedUnpickler.dispatch[getattr(pickle, _name)[0]] = _refuser(_name)
del _name


def restricted_load(file, *, encoding: str = "bytes", source: str = "<pickle>"):
    """Read one pickle from a binary file with :class:`RestrictedUnpickler`."""
    return RestrictedUnpickler(file, encoding=encoding, source=source).load()


def restricted_loads(data: bytes, *, encoding: str = "bytes", source: str = "<pickle>"):
    """Read one pickle from bytes with :class:`RestrictedUnpickler`."""
    return restricted_load(io.BytesIO(data), encoding=encoding, source=source)
