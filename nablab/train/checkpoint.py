"""Checkpoints as ``.npz`` files: arrays only (no pickle), written atomically.

A checkpoint holds named arrays and a JSON document of metadata (stored as a
``uint8`` array, so ``numpy.load(..., allow_pickle=False)`` reads everything).
It is written to a temporary file in the same folder, flushed to disk and then
renamed over the old one with :func:`os.replace`: a crash or an error while
saving leaves the previous checkpoint whole.

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
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["save_checkpoint", "load_checkpoint", "CheckpointError", "META_KEY"]

META_KEY = "__meta__"


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or not one of ours."""


def _write_npz(file, arrays) -> None:
    """Write ``arrays`` into the open binary ``file`` (a separate function so tests can make it fail)."""
    np.savez(file, **arrays)


def save_checkpoint(path, arrays: dict, meta: dict) -> None:
    """Save ``arrays`` (name -> array) and the JSON-able ``meta`` to ``path`` atomically."""
    path = Path(path)
    if META_KEY in arrays:
        raise ValueError(f"save_checkpoint: the array name {META_KEY!r} is reserved")
    payload = {}
    for name, value in arrays.items():
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"save_checkpoint: array {name!r} has dtype {arr.dtype}; only numbers can be saved")
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


def load_checkpoint(path):
    """``(arrays, meta)`` from a file written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})") from None
    if META_KEY not in arrays:
        raise CheckpointError(f"{path} has no {META_KEY} entry; it was not written by nablab.train")
    meta = json.loads(arrays.pop(META_KEY).tobytes().decode("utf-8"))
    return arrays, meta
