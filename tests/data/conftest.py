"""Fixtures for the data tests: a small CIFAR-10 in the official python format.

The official batches were pickled by Python 2, where byte strings are ``str``
(pickle opcodes SHORT_BINSTRING/BINSTRING) and NumPy names its array
rebuilder ``numpy.core.multiarray._reconstruct``. Python 3's pickler writes
``bytes`` at protocol 2 as ``_codecs.encode`` calls instead, so
:class:`Py2Pickler` re-creates the Python 2 byte stream.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import pickle
import signal
import struct
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest


class Py2Pickler(pickle._Pickler):
    """Protocol-2 pickles as Python 2 wrote them: every str/bytes as a Python 2 str."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        raw = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str

    def save_global(self, obj, name=None):
        if getattr(obj, "__name__", None) == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def py2_dumps(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def fake_cifar_files(n_train: int = 4, n_test: int = 3, seed: int = 0, replace: dict | None = None):
    """File name -> pickled bytes, in the official layout, and the arrays they hold."""
    rng = np.random.default_rng(seed)
    files, xs, ys = {}, {}, {}
    for name, n in [(f"data_batch_{i}", n_train) for i in range(1, 6)] + [("test_batch", n_test)]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        xs[name], ys[name] = data.reshape(n, 3, 32, 32), np.array(labels)
        files[name] = py2_dumps({b"batch_label": f"batch {name}".encode(), b"labels": labels,
                                 b"data": data, b"filenames": [f"img_{k}.png".encode() for k in range(n)]})
    files["batches.meta"] = py2_dumps({b"num_cases_per_batch": n_train,
                                       b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072})
    files.update(replace or {})
    train = [f"data_batch_{i}" for i in range(1, 6)]
    expected = {"x_train": np.concatenate([xs[n] for n in train]),
                "y_train": np.concatenate([ys[n] for n in train]),
                "x_test": xs["test_batch"], "y_test": ys["test_batch"], "classes": CLASSES}
    return files, expected


def write_folder(root: Path, files: dict) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in files.items():
        (folder / name).write_bytes(blob)
    return folder


def write_archive(path: Path, files: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def md5_table(files: dict, archive: Path | None = None) -> dict:
    table = {name: hashlib.md5(blob).hexdigest() for name, blob in files.items()}
    if archive is not None:
        table[archive.name] = hashlib.md5(archive.read_bytes()).hexdigest()
    return table


@pytest.fixture
def fake_cifar():
    """The builder functions, for tests that assemble their own fakes."""
    return SimpleNamespace(files=fake_cifar_files, folder=write_folder, archive=write_archive,
                           md5=md5_table, dumps=py2_dumps)


@contextlib.contextmanager
def time_limit(seconds: float):
    """Fail the test (instead of hanging it) when the block runs longer than ``seconds``."""
    def expire(signum, frame):
        raise TimeoutError(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def deadline():
    """``with deadline(5): ...`` fails the block after 5 seconds."""
    return time_limit
