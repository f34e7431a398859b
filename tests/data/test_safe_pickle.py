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


class Forged:
    """Pickles as whatever ``__reduce__`` tuple it is given: a way to write hostile pickles."""

    def __init__(self, *reduce):
        self.reduce = reduce

    def __reduce__(self):
        return self.reduce


def forged_dtype(spec="<i8", state=(3, "<", None, None, None, -1, -1, 0)):
    return Forged(np.dtype, (spec, False, True), state)


def forged_array(state, shape=(0,), spec=b"b"):
    from numpy._core.multiarray import _reconstruct

    return Forged(_reconstruct, (np.ndarray, shape, spec), state)


def test_a_forged_pickle_of_a_plain_array_still_loads():
    """The forging helpers write what NumPy writes: without a hostile part, the array comes back."""
    data = np.arange(3, dtype="<i8").tobytes()
    out = restricted_loads(pickle.dumps(forged_array((1, (3,), forged_dtype(), False, data)), protocol=3))
    assert out.dtype == np.int64 and out.tolist() == [0, 1, 2]


@pytest.mark.parametrize("state, refused", [
    ((3, "<", None, None, None, -1, -1, 63), "flags 63"),          # the flags of an object dtype: hasobject
    ((3, "<", None, None, None, -1, -1, 1), "flags 1"),
    ((3, "<", None, ("a",), {"a": (np.dtype("i8"), 0)}, -1, -1, 0), "field names ('a',)"),
    ((3, "<", (np.dtype("i1"), (8,)), None, None, -1, -1, 0), "subarray"),
    ((3, "<", None, None, None, 16, -1, 0), "item size 16"),
    ((4, "<", None, None, None, -1, -1, 0, {"x": 1}), "metadata {'x': 1}"),
    ((3, "!", None, None, None, -1, -1, 0), "byte order '!'"),
    ((1, "<", None, None, -1, -1, 0), "not a version 3 or 4"),
    ("<", "not a version 3 or 4"),
])
def test_dtype_state_may_set_only_the_byte_order(state, refused):
    blob = pickle.dumps(forged_array((1, (1,), forged_dtype(state=state), False, bytes(8))), protocol=3)
    with pytest.raises(UnsafePickleError, match="refused dtype state") as err:
        restricted_loads(blob)
    assert refused in str(err.value)


@pytest.mark.parametrize("spec", ["O", "V8", "M8[s]", "m8[s]", "U3", "S3", "i4,i4", "(2,)i4", "f16", "c32", "g",
                                  "not a dtype"])
def test_only_plain_numeric_dtypes_can_be_named(spec):
    for blob in (pickle.dumps(forged_dtype(spec=spec, state=None), protocol=3),
                 pickle.dumps(forged_array(None, spec=spec), protocol=3)):
        with pytest.raises(UnsafePickleError, match="refused dtype|not understood"):
            restricted_loads(blob)


@pytest.mark.parametrize("state, refused", [
    ((1, (2,), forged_dtype(), False, [None, None]), "its data is a list"),   # how object arrays are stored
    ((1, (4,), forged_dtype(), False, bytes(8)), "needs 32 bytes, the pickle holds 8"),
    ((1, (2 ** 40,), forged_dtype(), False, bytes(8)), "needs 8796093022208 bytes"),
    ((1, (-1,), forged_dtype(), False, bytes(8)), "shape (-1,)"),
    ((2, (1,), forged_dtype(), False, bytes(8)), "not a NumPy array state"),
    ((1, (1,), "i8", False, bytes(8)), "its dtype is a str"),
    ((1, (1,), forged_dtype(), 7, bytes(8)), "Fortran flag 7"),
])
def test_array_state_needs_a_plain_dtype_and_exactly_its_bytes(state, refused):
    with pytest.raises(UnsafePickleError, match="refused array state") as err:
        restricted_loads(pickle.dumps(forged_array(state), protocol=3))
    assert refused in str(err.value)


def test_numpy_ndarray_cannot_be_called_or_instantiated_directly():
    with pytest.raises(UnsafePickleError, match="refused a call to numpy.ndarray"):
        restricted_loads(pickle.dumps(Forged(np.ndarray, ((2,), "O")), protocol=3))
    # GLOBAL numpy.ndarray, args ((2**40,), "u1"), NEWOBJ: ndarray.__new__ would allocate a terabyte
    newobj = b"\x80\x03cnumpy\nndarray\n\x8a\x06\x00\x00\x00\x00\x00\x01\x85X\x02\x00\x00\x00u1\x86\x81."
    with pytest.raises(UnsafePickleError, match="refused opcode NEWOBJ"):
        restricted_loads(newobj)
    with pytest.raises(UnsafePickleError, match="refused shape"):  # no allocation from _reconstruct either
        restricted_loads(pickle.dumps(forged_array(None, shape=(2 ** 40,)), protocol=3))


def test_build_on_anything_but_an_array_or_dtype_is_refused():
    with pytest.raises(UnsafePickleError, match="refused to set the state of a dict"):
        restricted_loads(b"\x80\x03}}b.")  # EMPTY_DICT EMPTY_DICT BUILD


def test_random_damage_never_yields_anything_but_plain_data(fake_cifar, deadline):
    """Byte flips and truncations of a batch: a refusal or an error, or plain data with plain arrays."""
    import random

    good = fake_cifar.dumps({b"data": np.arange(3072 * 2, dtype=np.uint8).reshape(2, 3072), b"labels": [1, 2],
                             b"big": np.arange(6, dtype=">f8")})
    rng = random.Random(5)

    def plain(obj):
        if isinstance(obj, np.ndarray):
            return type(obj) is np.ndarray and not obj.dtype.hasobject and obj.dtype.kind in "biufc"
        if isinstance(obj, (dict, list, tuple, set, frozenset)):
            items = list(obj.items()) if isinstance(obj, dict) else list(obj)
            return all(plain(x) for x in items)
        return obj is None or isinstance(obj, (bytes, str, int, float, bool, complex, bytearray))

    with deadline(30):
        for trial in range(400):
            blob = bytearray(good)
            if trial % 3 == 0:
                blob = blob[:rng.randrange(len(blob))]
            else:
                for _ in range(rng.randint(1, 3)):
                    blob[rng.randrange(len(blob))] = rng.randrange(256)
            try:
                out = restricted_loads(bytes(blob))
            except (pickle.UnpicklingError, ValueError, TypeError, EOFError, KeyError, IndexError, AttributeError,
                    UnicodeDecodeError, OverflowError, MemoryError) as exc:
                assert not isinstance(exc, MemoryError), "a damaged pickle made us allocate too much"
                continue
            assert plain(out), out
