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

import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["cache_dir", "save_npz_atomic", "load_npz"]


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


def load_npz(path: str | os.PathLike) -> dict:
    """Every array of an ``.npz`` file, read with ``allow_pickle=False``."""
    with np.load(path, allow_pickle=False) as f:
        return {name: f[name] for name in f.files}
