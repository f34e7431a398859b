"""MNIST-1D, generated locally with the ``mnist1d`` package and cached as ``.npz``.

The data set is made by ``mnist1d.data.make_dataset`` with the package's
default arguments (5000 signals of length 40, 80% for training), the seed
overridable. It is never downloaded: ``mnist1d.get_dataset`` can fetch a
pickle from a URL and is never called here.

The first call writes ``mnist1d-<key>.npz`` to the cache folder (see
:func:`nablab.data.cache.cache_dir`); ``<key>`` hashes the generation
arguments and the ``mnist1d`` version, so other arguments never read a stale
file. Later calls read that file (``allow_pickle=False``, each array's size
checked against its header first) and check its keys, shapes and dtypes; a
file that fails is regenerated and replaced atomically, with a warning.

>>> data = load_mnist1d()                      # doctest: +SKIP
>>> data["x_train"].shape, data["y_train"].dtype, data["x_test"].shape, data["t"].shape  # doctest: +SKIP
((4000, 40), dtype('int64'), (1000, 40), (40,))
"""

from __future__ import annotations

import hashlib
import json
import random
import warnings
from pathlib import Path

import numpy as np

from nablab.data.cache import cache_dir as _cache_dir
from nablab.data.cache import BadNpzError, load_npz, save_npz_atomic

__all__ = ["load_mnist1d", "mnist1d_args", "mnist1d_cache_path"]

_FORMAT = 1  # bump when the cached layout changes
_KEYS = ("x_train", "y_train", "x_test", "y_test", "t")


def _package():
    try:
        import mnist1d.data as m1d
    except ImportError as exc:
        raise ImportError("MNIST-1D needs the `mnist1d` package: pip install mnist1d "
                          "(or pip install 'nablab[all]')") from exc
    return m1d


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mnist1d")
    except PackageNotFoundError:
        return "unknown"


def mnist1d_args(seed: int = 42) -> dict:
    """The generation arguments: ``mnist1d``'s defaults with ``seed`` set (the URL left out).

    >>> args = mnist1d_args(seed=7)
    >>> args["seed"], args["num_samples"], args["final_seq_length"]
    (7, 5000, 40)
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"load_mnist1d: seed must be a non-negative integer, got {seed!r}")
    args = dict(_package().get_dataset_args(as_dict=True))
    args.pop("url", None)
    args["seed"] = int(seed)
    return args


def _key(args: dict) -> tuple[str, str]:
    meta = json.dumps({"args": args, "mnist1d": _package_version(), "format": _FORMAT},
                      sort_keys=True)
    return meta, hashlib.sha256(meta.encode()).hexdigest()[:16]


def mnist1d_cache_path(cache_dir=None, seed: int = 42) -> Path:
    """Where :func:`load_mnist1d` keeps the data set for these arguments."""
    _, key = _key(mnist1d_args(seed))
    return _cache_dir(cache_dir) / f"mnist1d-{key}.npz"


def _generate(args: dict) -> dict:
    """Run ``make_dataset``, leaving the global ``random`` and NumPy states as they were.

    ``make_dataset`` seeds and draws from the global generators; a caller's
    own random stream must not depend on whether the cache was warm.
    """
    m1d = _package()
    view = m1d.get_dataset_args()  # an ObjectView, as make_dataset expects
    for name, value in args.items():
        setattr(view, name, value)
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        raw = m1d.make_dataset(view)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {
        "x_train": np.asarray(raw["x"], dtype=np.float64),
        "y_train": np.asarray(raw["y"], dtype=np.int64),
        "x_test": np.asarray(raw["x_test"], dtype=np.float64),
        "y_test": np.asarray(raw["y_test"], dtype=np.int64),
        "t": np.asarray(raw["t"], dtype=np.float64),
    }


_DTYPES = {"x_train": np.float64, "y_train": np.int64, "x_test": np.float64, "y_test": np.int64, "t": np.float64}


def _problem(stored: dict, meta: str) -> str | None:
    """What is wrong with the arrays read from a cache file, or None if they are usable."""
    missing = [k for k in _KEYS + ("meta",) if k not in stored]
    if missing:
        return f"it lacks {', '.join(missing)}"
    if stored["meta"].shape != () or stored["meta"].dtype.kind != "U" or str(stored["meta"]) != meta:
        return "it was made with other arguments or another mnist1d version"
    for key, dtype in _DTYPES.items():
        if stored[key].dtype != dtype:
            return f"{key} is {stored[key].dtype}, not {np.dtype(dtype)}"
    xtr, ytr, xte, yte, t = (stored[k] for k in _KEYS)
    if not (xtr.ndim == xte.ndim == 2 and ytr.shape == (len(xtr),) and yte.shape == (len(xte),)
            and t.ndim == 1 and xtr.shape[1] == xte.shape[1] == len(t)):
        return (f"its shapes do not fit together (x_train {xtr.shape}, y_train {ytr.shape}, x_test {xte.shape}, "
                f"y_test {yte.shape}, t {t.shape})")
    if ((ytr < 0) | (ytr > 9)).any() or ((yte < 0) | (yte > 9)).any():
        return "it holds labels outside 0..9"
    return None


def _read_cache(path: Path, meta: str):
    """``(arrays, None)`` from a usable cache file, else ``(None, why not)``."""
    if not path.exists() and not path.is_symlink():
        return None, None
    try:
        stored = load_npz(path)
    except BadNpzError as exc:
        return None, str(exc)
    problem = _problem(stored, meta)
    return (None, f"{path}: {problem}") if problem else ({k: stored[k] for k in _KEYS}, None)


def _clear_the_way(path: Path) -> None:
    """An empty folder where the cache file belongs is removed; anything else in the way stays."""
    if path.is_dir() and not path.is_symlink():
        try:
            path.rmdir()
        except OSError:
            pass  # not empty: the write below fails and says so; nothing of the user's is deleted


def load_mnist1d(cache_dir=None, seed: int = 42) -> dict:
    """MNIST-1D as a dict of arrays, generated once and then read from the cache.

    Keys: ``x_train`` (4000, 40) float64, ``y_train`` (4000,) int64,
    ``x_test`` (1000, 40), ``y_test`` (1000,), ``t`` (40,) the sample
    positions. A cache file that cannot be used (truncated, not an ``.npz``,
    other keys, shapes or dtypes, an empty folder in its place) is
    regenerated and atomically replaced, with a one-line warning. When the
    cache cannot be written (a read-only folder, a non-empty folder in the
    file's place), the data is still returned, with a warning saying so.

    ``cache_dir`` is the cache folder (default ``$NABLAB_CACHE`` or ``~/.cache/nablab``); ``seed``
    picks the data set, so each seed is generated once. Generating takes a second or two.

    >>> import tempfile
    >>> from nablab.data import load_mnist1d
    >>> data = load_mnist1d(cache_dir=tempfile.mkdtemp())
    >>> data["x_train"].shape, data["y_train"].dtype, data["x_test"].shape, data["t"].shape
    ((4000, 40), dtype('int64'), (1000, 40), (40,))
    """
    args = mnist1d_args(seed)
    meta, key = _key(args)
    path = _cache_dir(cache_dir) / f"mnist1d-{key}.npz"
    data, problem = _read_cache(path, meta)
    if data is not None:
        return data
    if problem is not None:
        warnings.warn(f"MNIST-1D cache is unusable, regenerating it: {problem}", RuntimeWarning, stacklevel=2)
        _clear_the_way(path)
    data = _generate(args)
    try:
        save_npz_atomic(path, {**data, "meta": np.array(meta)})
    except OSError as exc:
        warnings.warn(f"could not write the MNIST-1D cache {path} ({type(exc).__name__}: {exc}); the data set "
                      "is in memory and will be generated again next time. Set NABLAB_CACHE to a writable folder.",
                      RuntimeWarning, stacklevel=2)
    return data
