"""MNIST-1D, generated locally with the ``mnist1d`` package and cached as ``.npz``.

The data set is made by ``mnist1d.data.make_dataset`` with the package's
default arguments (5000 signals of length 40, 80% for training), the seed
overridable. It is never downloaded: ``mnist1d.get_dataset`` can fetch a
pickle from a URL and is never called here.

The first call writes ``mnist1d-<key>.npz`` to the cache folder (see
:func:`nablab.data.cache.cache_dir`); ``<key>`` hashes the generation
arguments and the ``mnist1d`` version, so other arguments never read a stale
file. Later calls read that file (``allow_pickle=False``).

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
from nablab.data.cache import load_npz, save_npz_atomic

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


def _valid(stored: dict, meta: str) -> bool:
    if any(k not in stored for k in _KEYS + ("meta",)) or str(stored["meta"]) != meta:
        return False
    xtr, ytr, xte, yte, t = (stored[k] for k in _KEYS)
    return (xtr.ndim == 2 and xte.ndim == 2 and ytr.shape == (len(xtr),) and yte.shape == (len(xte),)
            and xtr.shape[1] == xte.shape[1] == t.shape[0] and xtr.dtype == np.float64
            and ytr.dtype == np.int64)


def load_mnist1d(cache_dir=None, seed: int = 42) -> dict:
    """MNIST-1D as a dict of arrays, generated once and then read from the cache.

    Keys: ``x_train`` (4000, 40) float64, ``y_train`` (4000,) int64,
    ``x_test`` (1000, 40), ``y_test`` (1000,), ``t`` (40,) the sample
    positions. A cache file that cannot be read is regenerated with a
    warning; a cache folder that cannot be written only warns.
    """
    args = mnist1d_args(seed)
    meta, key = _key(args)
    path = _cache_dir(cache_dir) / f"mnist1d-{key}.npz"
    if path.is_file():
        try:
            stored = load_npz(path)
        except (OSError, ValueError, EOFError) as exc:  # truncated or not an npz
            stored = None
            reason = f"{type(exc).__name__}: {exc}"
        else:
            reason = "its arrays or arguments do not match"
        if stored is not None and _valid(stored, meta):
            return {k: stored[k] for k in _KEYS}
        warnings.warn(f"MNIST-1D cache file {path} is unusable ({reason}); regenerating it",
                      RuntimeWarning, stacklevel=2)
    data = _generate(args)
    try:
        save_npz_atomic(path, {**data, "meta": np.array(meta)})
    except OSError as exc:
        warnings.warn(f"could not write the MNIST-1D cache {path} ({exc}); the data set will be "
                      "generated again next time. Set NABLAB_CACHE to a writable folder.",
                      RuntimeWarning, stacklevel=2)
    return data
