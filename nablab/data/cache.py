"""Where generated data is cached, and how arrays are written there safely.

The cache folder is, in order: the ``cache_dir`` argument, ``$NABLAB_CACHE``,
``~/.cache/nablab``. Files are ``.npz`` archives written atomically: the
arrays go to a temporary file in the same folder, which then replaces the
target in one ``os.replace``, so a reader never sees a half-written file.

>>> import tempfile, numpy as np
>>> folder = Path(tempfile.mkdtemp())
>>> path = save_npz_atomic(folder / "demo.npz", {"a": np.arange(3)})
>>> load_npz(path)["a"]
array([0, 1, 2])
"""

from __future__ import annotations

import math
import os
import stat
import struct
import tempfile
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

__all__ = ["cache_dir", "save_npz_atomic", "load_npz", "BadNpzError"]


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``explicit``, else ``$NABLAB_CACHE``, else ``~/.cache/nablab``.

    >>> str(cache_dir("/tmp/some/where"))
    '/tmp/some/where'
    """
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get("NABLAB_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "nablab"


def save_npz_atomic(path: str | os.PathLike, arrays: dict) -> Path:
    """Write ``arrays`` to ``path`` as an uncompressed ``.npz``, atomically.

    Object arrays are refused (they would need pickling to load back).
    Creates the parent folder. Returns the path written.
    """
    path = Path(path)
    for name, value in arrays.items():
        if np.asarray(value).dtype.hasobject:
            raise TypeError(f"save_npz_atomic: array {name!r} has dtype object, which .npz "
                            "cannot hold without pickling")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


class BadNpzError(ValueError):
    """An ``.npz`` file that is unreadable, inconsistent or not plain arrays."""


# What a damaged zip or .npy header can raise while being read.
_READ_ERRORS = (OSError, EOFError, ValueError, TypeError, OverflowError, NotImplementedError, RuntimeError,
                SyntaxError, tokenize.TokenError, zipfile.BadZipFile, zlib.error, struct.error)
_DEFLATE_MAX_RATIO = 1032  # deflate cannot expand data more than 1032-fold
_PLAIN_KINDS = "biufcSU"


def load_npz(path: str | os.PathLike) -> dict:
    """Every array of an ``.npz`` file, checked before anything is allocated.

    Each member's ``.npy`` header is read first; its shape times its item size
    must equal the bytes the zip member holds, and the member must fit in the
    file (a stored member byte for byte, a deflated one within deflate's
    largest ratio). So a small file cannot make us allocate a huge array.
    Only plain dtypes (numbers, bools, fixed-length strings) are accepted,
    never pickled objects. Anything wrong raises :class:`BadNpzError` naming the file and the problem.
    """
    path = Path(path)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise BadNpzError(f"{path} is not a regular file")
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            _check_members(path, infos, st.st_size)
            out = {}
            for info in infos:
                with zf.open(info) as member:
                    out[info.filename[:-4]] = _read_npy(path, info, member)
            return out
    except BadNpzError:
        raise
    except _READ_ERRORS as exc:
        raise BadNpzError(f"{path} is not a readable .npz file ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _check_members(path: Path, infos, size: int) -> None:
    """Refuse a member whose declared sizes this file cannot back, before reading any data."""
    names = set()
    for info in infos:
        where = f"{path}: member {info.filename!r}"
        if not info.filename.endswith(".npy") or info.filename in names:
            raise BadNpzError(f"{where} is not a uniquely named .npy array")
        names.add(info.filename)
        if info.flag_bits & 0x1:
            raise BadNpzError(f"{where} is encrypted")
        if info.header_offset + info.compress_size > size:
            raise BadNpzError(f"{where} claims {info.compress_size} bytes, more than the file's {size}")
        if info.compress_type == zipfile.ZIP_STORED:
            limit = info.compress_size
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            limit = _DEFLATE_MAX_RATIO * info.compress_size + 1024
        else:
            raise BadNpzError(f"{where} uses compression method {info.compress_type}, not stored or deflate")
        if info.file_size > limit:
            raise BadNpzError(f"{where} claims {info.file_size} bytes from {info.compress_size} stored ones")


def _read_npy(path: Path, info, member) -> np.ndarray:
    where = f"{path}: array {info.filename[:-4]!r}"
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise BadNpzError(f"{where} has .npy format version {version}, not 1.0 or 2.0")
    if dtype.kind not in _PLAIN_KINDS or dtype.hasobject or dtype.fields is not None or dtype.subdtype:
        raise BadNpzError(f"{where} has dtype {dtype}, not a plain number, bool or string type")
    count = math.prod(shape)  # Python ints: no overflow, whatever the header says
    expected, held = count * dtype.itemsize, info.file_size - member.tell()
    if expected != held:
        raise BadNpzError(f"{where}: its header claims shape {shape} of {dtype} ({expected} bytes), "
                          f"but the member holds {held} bytes")
    array = np.empty(count, dtype=dtype)
    view = memoryview(array).cast("B")
    done = 0
    while done < expected:
        chunk = member.read(min(expected - done, 1 << 22))
        if not chunk:
            raise BadNpzError(f"{where} is truncated after {done} of {expected} bytes")
        view[done:done + len(chunk)] = chunk
        done += len(chunk)
    if member.read(1):  # also makes zipfile check the CRC of the whole member
        raise BadNpzError(f"{where} has more data than its header says")
    return array.reshape(shape, order="F" if fortran else "C")
