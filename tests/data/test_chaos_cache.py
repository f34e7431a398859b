"""Chaos tests for the MNIST-1D cache: every damaged cache is regenerated with a one-line warning.

``make_dataset`` is replaced by a small seeded stand-in (the real one takes
seconds); the cache logic under test is the same. Each case checks that the
data returned equals a fresh generation, that the file left behind is whole
(the next call reads it without regenerating), and that no temporary file
is left in the folder.
"""

import io
import os
import random
import warnings
import zipfile

import mnist1d.data
import numpy as np
import pytest

from nablab.data import load_mnist1d
from nablab.data import mnist_1d as nb_mnist1d
from nablab.data.cache import BadNpzError, load_npz, save_npz_atomic

SEED = 3


def small_dataset(args):
    rng = np.random.default_rng(args.seed)
    return {"x": rng.standard_normal((8, 40)), "y": np.arange(8) % 10, "x_test": rng.standard_normal((2, 40)),
            "y_test": np.arange(2), "t": np.linspace(0, 1, 40), "templates": None}


@pytest.fixture
def calls(monkeypatch):
    seen = []

    def fake(args):
        seen.append(args.seed)
        return small_dataset(args)

    monkeypatch.setattr(mnist1d.data, "make_dataset", fake)
    return seen


@pytest.fixture
def cache(tmp_path, calls):
    """A folder holding a good cache file; returns (folder, path, the file's bytes, the data)."""
    data = load_mnist1d(cache_dir=tmp_path, seed=SEED)
    path = nb_mnist1d.mnist1d_cache_path(tmp_path, SEED)
    calls.clear()
    return tmp_path, path, path.read_bytes(), data


def load_expecting(folder, n_warnings, *fragments):
    """load_mnist1d, with exactly ``n_warnings`` one-line RuntimeWarnings holding ``fragments``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_mnist1d(cache_dir=folder, seed=SEED)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == n_warnings, messages
    for message in messages:
        assert "\n" not in message
    for fragment in fragments:
        assert any(fragment in m for m in messages), (fragment, messages)
    return data


def assert_same(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype
        np.testing.assert_array_equal(a[key], b[key])


def assert_healed(folder, path, data, calls):
    """The cache file is whole again: read without regenerating, no temporary files about."""
    assert path.is_file() and not path.is_symlink()
    assert_same(load_expecting(folder, 0), data)
    assert calls == [SEED]
    assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


def npz_bytes(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def good_arrays(path):
    return load_npz(path)


def oversized_header(path):
    """A few KB whose x_train header claims 9 TiB."""
    arrays = good_arrays(path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, value in arrays.items():
            member = io.BytesIO()
            if name == "x_train":
                np.lib.format.write_array_header_1_0(
                    member, {"descr": "<f8", "fortran_order": False, "shape": (9 * 2 ** 40 // 8 // 40, 40)})
                member.write(bytes(4096))
            else:
                np.lib.format.write_array(member, value)
            zf.writestr(f"{name}.npy", member.getvalue())
    return buf.getvalue()


def changed(path, **replace):
    arrays = good_arrays(path)
    for key, value in replace.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    return npz_bytes(arrays)


DAMAGE = {
    "zero bytes": lambda p, blob: b"",
    "not a zip": lambda p, blob: b"this is not an npz file\n",
    "truncated in the data": lambda p, blob: blob[:len(blob) // 2],
    "truncated in the directory": lambda p, blob: blob[:-30],
    "missing key": lambda p, blob: changed(p, x_test=None),
    "wrong shape": lambda p, blob: changed(p, x_train=np.zeros((8, 39))),
    "wrong dtype": lambda p, blob: changed(p, y_train=np.zeros(8)),
    "labels out of range": lambda p, blob: changed(p, y_test=np.array([0, 12])),
    "other arguments": lambda p, blob: changed(p, meta=np.array("{}")),
    "meta not a string": lambda p, blob: changed(p, meta=np.arange(3)),
    "header claims 9 TiB": lambda p, blob: oversized_header(p),
    "pickled object array": lambda p, blob: changed(p, t=np.array([None, "x"], dtype=object)),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_cache_file_is_regenerated(cache, calls, deadline, damage):
    folder, path, blob, data = cache
    path.write_bytes(DAMAGE[damage](path, blob))
    with deadline(10):
        again = load_expecting(folder, 1, "MNIST-1D cache is unusable, regenerating it", str(path))
    assert_same(again, data)
    assert_healed(folder, path, data, calls)


@pytest.mark.parametrize("seed", range(6))
def test_truncation_at_random_points_and_byte_flips(cache, calls, deadline, seed):
    folder, path, blob, data = cache
    rng = random.Random(seed)
    with deadline(20):
        for trial in range(15):
            damaged = bytearray(blob)
            if trial % 2:
                damaged = damaged[:rng.randrange(len(blob))]
            else:
                for _ in range(rng.randint(1, 4)):
                    damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
            path.write_bytes(bytes(damaged))
            calls.clear()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                again = load_mnist1d(cache_dir=folder, seed=SEED)
            # A flip that lands where nothing is checked (a zip timestamp) leaves a usable file.
            assert len(caught) == len(calls) <= 1 and all("\n" not in str(w.message) for w in caught)
            assert_same(again, data)
            calls.clear()
            assert_same(load_mnist1d(cache_dir=folder, seed=SEED), data)
            assert calls == []  # whatever happened, the file left behind is whole


@pytest.mark.parametrize("kind", ["empty folder", "dangling symlink"])
def test_something_else_in_the_files_place_is_replaced(cache, calls, deadline, kind):
    folder, path, _, data = cache
    path.unlink()
    if kind == "empty folder":
        path.mkdir()
    else:
        path.symlink_to(folder / "nowhere.npz")
    with deadline(10):
        assert_same(load_expecting(folder, 1, "regenerating it", str(path)), data)
    assert_healed(folder, path, data, calls)


def test_a_folder_with_contents_in_the_files_place_is_kept(cache, calls, deadline):
    folder, path, _, data = cache
    path.unlink()
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    with deadline(10):
        again = load_expecting(folder, 2, "not a regular file", "could not write the MNIST-1D cache", "in memory")
    assert_same(again, data)
    assert (path / "notes.txt").read_text() == "mine"  # nothing of the user's is deleted
    assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("how", ["simulated", "chmod"])
def test_a_read_only_cache_folder_still_gives_the_data(tmp_path, calls, monkeypatch, deadline, how):
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "other.npz").write_bytes(b"someone else's file")
    if how == "chmod":
        folder.chmod(0o555)
        if os.access(folder, os.W_OK):  # root ignores permissions
            folder.chmod(0o755)
            pytest.skip("this user can write into a read-only folder")
    else:
        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied", str(folder))

        monkeypatch.setattr(nb_mnist1d, "save_npz_atomic",
                            lambda path, arrays: refuse() if path.parent == folder else save_npz_atomic(path, arrays))
    try:
        with deadline(10):
            data = load_expecting(folder, 1, "could not write the MNIST-1D cache", "PermissionError",
                                  "Set NABLAB_CACHE to a writable folder")
        assert_same(data, {k: v for k, v in load_mnist1d(cache_dir=tmp_path / "rw", seed=SEED).items()})
        assert sorted(p.name for p in folder.iterdir()) == ["other.npz"]
        assert (folder / "other.npz").read_bytes() == b"someone else's file"
    finally:
        folder.chmod(0o755)


def test_a_crash_while_writing_leaves_no_half_written_cache(cache, calls, monkeypatch, deadline):
    folder, path, blob, data = cache
    path.write_bytes(blob[:100])  # damaged, so the next call regenerates and writes
    real_savez = np.savez

    def dies_halfway(file, **arrays):
        real_savez(file, **arrays)
        file.truncate(200)
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", dies_halfway)
    with deadline(10), pytest.raises(KeyboardInterrupt), pytest.warns(RuntimeWarning, match="regenerating"):
        load_mnist1d(cache_dir=folder, seed=SEED)
    assert path.read_bytes() == blob[:100]  # the old file, untouched: never a half-written new one
    assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []
    monkeypatch.setattr(np, "savez", real_savez)
    calls.clear()
    assert_same(load_expecting(folder, 1, "regenerating it"), data)
    assert_healed(folder, path, data, calls)


def test_load_npz_names_the_file_and_the_problem(tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(npz_bytes({"a": np.arange(3)})[:-10])
    with pytest.raises(BadNpzError, match=f"{path} is not a readable .npz file \\(BadZipFile"):
        load_npz(path)
