"""The restricted unpickler builds plain data and NumPy numeric arrays, and refuses everything else."""

import io
import pickle
import subprocess

import numpy as np
import pytest

from nablab.data.safe_pickle import ALLOWED_GLOBALS, RestrictedUnpickler, UnsafePickleError, restricted_loads


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4])
def test_plain_data_round_trips(protocol):
    obj = {"a": [1, 2.5, None, True], "b": ("x", b"y"), "c": {"d": -7}}
    if protocol >= 3:  # below 3, Python 3 writes bytes through _codecs.encode, which is refused
        assert restricted_loads(pickle.dumps(obj, protocol=protocol), encoding="ASCII") == obj


@pytest.mark.parametrize("dtype", ["u1", "<i4", ">f8", "<c16", "?"])
@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_numeric_arrays_round_trip(dtype, protocol, fake_cifar):
    a = np.arange(12).reshape(3, 4).astype(dtype)
    blob = fake_cifar.dumps({b"a": a}) if protocol == 2 else pickle.dumps({b"a": a}, protocol=protocol)
    out = restricted_loads(blob)[b"a"]
    # (NumPy may hand back a big-endian array in native byte order; the values must match)
    assert out.dtype.newbyteorder("=") == a.dtype.newbyteorder("=")
    assert out.shape == a.shape and np.array_equal(out, a)
    assert out.flags.writeable


def test_the_allow_list_is_exactly_the_numpy_rebuilders():
    assert ALLOWED_GLOBALS == {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                               ("numpy", "ndarray"), ("numpy", "dtype")}


def global_pickle(module: str, name: str, args: tuple = ()) -> bytes:
    """Protocol-0 text pickle that calls module.name(*args)."""
    body = b"".join(b"S" + repr(a).encode() + b"\n" for a in args)
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n(" + body + b"tR."


@pytest.mark.parametrize("module, name", [
    ("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"),
    ("__builtin__", "eval"), ("builtins", "getattr"), ("subprocess", "Popen"), ("copyreg", "_reconstructor"),
    ("numpy", "load"), ("numpy.testing._private.utils", "runstring"), ("numpy", "frombuffer"),
    ("numpy.core.multiarray", "scalar"), ("pickle", "loads"),
])
def test_every_other_global_is_refused(module, name, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: calls.append(a))
    with pytest.raises(UnsafePickleError, match=f"refused to load the global {module}.{name}"):
        restricted_loads(global_pickle(module, name, ("touch " + str(tmp_path / "x"),)))
    assert not calls and not (tmp_path / "x").exists()


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # building np.matrix for the test
def test_object_arrays_and_subclasses_are_refused():
    with pytest.raises(UnsafePickleError, match="refused dtype"):
        restricted_loads(pickle.dumps(np.array([1, "a"], dtype=object), protocol=3))
    with pytest.raises(UnsafePickleError, match="matrix"):
        restricted_loads(pickle.dumps(np.asmatrix(np.eye(2)), protocol=3))
    with pytest.raises(UnsafePickleError, match="refused dtype"):
        restricted_loads(pickle.dumps(np.zeros(2, dtype=[("a", "i4")]), protocol=3))


def test_persistent_ids_are_refused():
    class WithId(pickle.Pickler):
        def persistent_id(self, obj):
            return "ref" if obj == "secret" else None

    buf = io.BytesIO()
    WithId(buf, protocol=3).dump(["secret"])
    with pytest.raises(UnsafePickleError, match="persistent id"):
        RestrictedUnpickler(io.BytesIO(buf.getvalue())).load()


def test_builtin_dtypes_are_never_modified_in_place(fake_cifar):
    big = np.arange(3, dtype=">u4")
    restricted_loads(fake_cifar.dumps(big))
    assert np.dtype("u4").byteorder == "=" and np.dtype("uint8").isnative
