"""Checkpoints as ``.npz`` files: arrays only (no pickle), written atomically.

A checkpoint holds named arrays and a JSON document of metadata (stored as a
``uint8`` array, so ``numpy.load(..., allow_pickle=False)`` reads everything).
It is written to a temporary file in the same folder, flushed to disk and then
renamed over the old one with :func:`os.replace`: a crash or an error while
saving leaves the previous checkpoint whole.

Reading trusts nothing in the file: every array's ``.npy`` header is checked
against the bytes the file really holds before anything is allocated (see
:func:`nablab.data.cache.load_npz`), the metadata must be a JSON object, and
an array holding NaN or infinity is refused, so a checkpoint that loads is
one worth resuming from. Every problem raises :class:`CheckpointError`
naming the file and what is wrong.

>>> import numpy as np, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "ckpt.npz"
>>> save_checkpoint(path, {"w": np.arange(3.0)}, {"epoch": 1})
>>> arrays, meta = load_checkpoint(path)
>>> arrays["w"], meta["epoch"]
(array([0., 1., 2.]), 1)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from nablab.data.cache import BadNpzError, load_npz
from nablab.errors import CheckpointError

__all__ = ["save_checkpoint", "load_checkpoint", "CheckpointError", "META_KEY"]

META_KEY = "__meta__"


def _write_npz(file, arrays) -> None:
    """Write ``arrays`` into the open binary ``file`` (a separate function so tests can make it fail)."""
    np.savez(file, **arrays)


def save_checkpoint(path, arrays: dict, meta: dict) -> None:
    """Save ``arrays`` (name -> array) and the JSON-able ``meta`` to ``path`` atomically.

    >>> import numpy as np, tempfile, pathlib
    >>> from nablab.train import save_checkpoint, load_checkpoint
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ckpt.npz"
    >>> save_checkpoint(path, {"w": np.ones(2)}, {"epoch": 3})
    >>> load_checkpoint(path)[1]["epoch"]
    3
    """
    path = Path(path)
    if META_KEY in arrays:
        raise ValueError(f"save_checkpoint: the array name {META_KEY!r} is reserved")
    payload = {}
    for name, value in arrays.items():
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"save_checkpoint: array {name!r} has dtype {arr.dtype}; only numbers can be saved")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(f"save_checkpoint: array {name!r} holds NaN or infinity; the previous checkpoint "
                             f"at {path} is kept")
        payload[name] = arr
    payload[META_KEY] = np.frombuffer(json.dumps(meta, allow_nan=False).encode("utf-8"), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            _write_npz(f, payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some systems cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path, *, finite: bool = True):
    """``(arrays, meta)`` from a file written by :func:`save_checkpoint`.

    With ``finite`` (the default) an array holding NaN or infinity is refused.

    >>> import numpy as np, tempfile, pathlib
    >>> from nablab.train import save_checkpoint, load_checkpoint
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ckpt.npz"
    >>> save_checkpoint(path, {"w": np.ones(2)}, {"epoch": 3})
    >>> arrays, meta = load_checkpoint(path)
    >>> arrays["w"], meta
    (array([1., 1.]), {'epoch': 3})
    >>> _ = path.write_bytes(b"not a checkpoint")
    >>> load_checkpoint(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nablab.errors.CheckpointError: checkpoint ... cannot be read: ...
    """
    path = Path(path)
    if not path.is_file():
        what = "a folder" if path.is_dir() else "nothing"
        raise CheckpointError(f"no checkpoint at {path} ({what} there)")
    try:
        arrays = load_npz(path)
    except BadNpzError as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc}") from None
    raw = arrays.pop(META_KEY, None)
    if raw is None:
        raise CheckpointError(f"checkpoint {path} has no {META_KEY} entry; it was not written by nablab.train")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"checkpoint {path}: {META_KEY} is a {raw.dtype} array of shape {raw.shape}, "
                              "not the uint8 bytes of a JSON document")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError both are ValueErrors
        raise CheckpointError(f"checkpoint {path}: {META_KEY} is not valid UTF-8 JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path}: its metadata is a JSON {type(meta).__name__}, not an object")
    for name, value in arrays.items():
        if value.dtype.kind not in "biuf":
            raise CheckpointError(f"checkpoint {path}: array {name!r} has dtype {value.dtype}, not a number type")
        if finite and value.dtype.kind == "f" and not np.isfinite(value).all():
            bad = int(np.count_nonzero(~np.isfinite(value)))
            raise CheckpointError(f"checkpoint {path}: array {name!r} holds {bad} NaN or infinite value(s) of "
                                  f"{value.size}; a diverged run's weights are not a checkpoint to resume from")
    return arrays, meta
