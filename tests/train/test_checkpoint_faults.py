"""Chaos tests for checkpoints: wrong structure, absurd sizes, non-finite weights, random damage.

Each damaged checkpoint must be refused with a CheckpointError naming the file
and the problem (exit status 2 and one ``error:`` line from the shell, no
traceback), and the file must be left exactly as it was.
"""

import io
import json
import random
import struct
import zipfile

import numpy as np
import pytest
from typer.testing import CliRunner

from nablab.cli import app
from nablab.train import CheckpointError, TrainConfig, load_checkpoint, read_csv, train
from nablab.train.checkpoint import META_KEY
from nablab.train.loop import CHECKPOINT, METRICS


def config(**kw):
    base = dict(model="mlp", hidden=16, optimizer="adam", lr=1e-2, epochs=2, batch_size=64, seed=1, dtype="float64")
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def run(tmp_path, toy):
    """A run folder after one epoch: (folder, checkpoint arrays, metadata)."""
    folder = tmp_path / "run"
    train(config(epochs=1), folder, dataset=toy)
    arrays, meta = load_checkpoint(folder / CHECKPOINT)
    return folder, arrays, meta


def write(path, arrays, meta=None, raw_meta=None):
    """An .npz as save_checkpoint would write it, but with no checks: anything can go in."""
    payload = dict(arrays)
    if raw_meta is not None or meta is not None:
        text = raw_meta if raw_meta is not None else json.dumps(meta).encode()
        payload[META_KEY] = np.frombuffer(text, dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **payload)
    path.write_bytes(buf.getvalue())


def refused_resume(folder, toy, *fragments):
    """Resuming fails with a CheckpointError holding every fragment; the checkpoint is left as it was."""
    path = folder / CHECKPOINT
    before = path.read_bytes() if path.is_file() else None
    metrics = (folder / METRICS).read_bytes()
    with pytest.raises(CheckpointError) as err:
        train(config(), folder, dataset=toy, resume=True)
    message = str(err.value)
    assert str(path) in message and "\n" not in message and "last good checkpoint" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    if before is not None:
        assert path.read_bytes() == before
    assert (folder / METRICS).read_bytes() == metrics
    return message


def meta_with(meta, **changes):
    out = json.loads(json.dumps(meta))
    for key, value in changes.items():
        if value is DELETE:
            del out[key]
        else:
            out[key] = value
    return out


DELETE = object()

META_FAULTS = {
    "no config": ({"config": DELETE}, "has config of type NoneType, not a mapping"),
    "config is a list": ({"config": [1, 2]}, "has config of type list, not a mapping"),
    "no history": ({"history": DELETE}, "has a history of a NoneType for 1 epochs"),
    "history is a mapping": ({"history": {"epoch": 1}}, "has a history of a dict for 1 epochs"),
    "history row is a list": ({"history": [[1, 8, 1.0, 0.5, 1.0, 0.5]]}, "has history row 1 = [1, 8"),
    "history too short": ({"history": []}, "has a history of 0 rows for 1 epochs"),
    "epoch is a string": ({"epoch": "1"}, "has epoch '1', not a non-negative integer"),
    "negative step": ({"step": -4}, "has step -4, not a non-negative integer"),
    "other format": ({"format": "someone-else/3"}, "has format 'someone-else/3'"),
    "epoch_seconds is a number": ({"epoch_seconds": 3.5}, "has epoch_seconds 3.5"),
}


@pytest.mark.parametrize("fault", list(META_FAULTS))
def test_metadata_of_the_wrong_structure_is_named(run, toy, deadline, fault):
    folder, arrays, meta = run
    changes, says = META_FAULTS[fault]
    write(folder / CHECKPOINT, arrays, meta_with(meta, **changes))
    with deadline(10):
        refused_resume(folder, toy, says)


def test_a_nan_in_the_history_is_refused(run, toy):
    folder, arrays, meta = run
    text = json.dumps(meta).replace('"test_loss": ', '"test_loss": NaN, "was": ', 1).encode()
    write(folder / CHECKPOINT, arrays, raw_meta=text)
    refused_resume(folder, toy, "has history row 1")


def array_faults(arrays):
    weight = next(k for k in arrays if k.startswith("model."))
    steps = arrays["history.step_loss"]
    return {
        "no step losses": ({"history.step_loss": None}, "has history.step_loss of none"),
        "step losses too short": ({"history.step_loss": steps[:-1]}, f"not one loss for each of its {len(steps)} steps"),
        "no weights": ({k: None for k in arrays if k.startswith("model.")}, "holds no weights (no model.* arrays)"),
        "a weight missing": ({weight: None}, f"does not fit the model: {weight} is missing"),
        "a weight of another shape": ({weight: np.zeros((3, 3))}, f"{weight} has shape (3, 3), the model's is"),
        "an unknown entry": ({"model.extra.weight": np.zeros(2)}, "model.extra.weight (shape (2,)) is not part"),
        "a NaN weight": ({weight: np.where(np.arange(arrays[weight].size).reshape(arrays[weight].shape) == 0,
                                           np.nan, arrays[weight])}, f"array '{weight}' holds 1 NaN or infinite"),
        "an infinite optimizer state": ({k: np.full_like(v, np.inf) for k, v in arrays.items()
                                         if k.startswith("optim.") and v.dtype.kind == "f" and v.size > 1},
                                        "NaN or infinite value(s)"),
        "an object array": ({weight: np.array([None], dtype=object)}, "not a plain number, bool or string type"),
    }


@pytest.mark.parametrize("fault", ["no step losses", "step losses too short", "no weights", "a weight missing",
                                   "a weight of another shape", "an unknown entry", "a NaN weight",
                                   "an infinite optimizer state", "an object array"])
def test_arrays_of_the_wrong_structure_are_named(run, toy, deadline, fault):
    folder, arrays, meta = run
    changes, says = array_faults(arrays)[fault]
    changed = dict(arrays)
    for key, value in changes.items():
        if value is None:
            del changed[key]
        else:
            changed[key] = value
    write(folder / CHECKPOINT, changed, meta)
    with deadline(10):
        refused_resume(folder, toy, says)


def tiny_npz_claiming(shape, descr="<f8", held=10_000):
    """About ``held`` bytes whose only array header claims ``shape``."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": descr, "fortran_order": False, "shape": shape})
    member.write(bytes(held))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("model.0.weight.npy", member.getvalue())
    return buf.getvalue()


def lying_directory(blob, compressed=None, uncompressed=None):
    """The zip's central directory rewritten to claim other sizes (4 GB max without zip64)."""
    at = blob.index(b"PK\x01\x02")
    out = bytearray(blob)
    if compressed is not None:
        out[at + 20:at + 24] = struct.pack("<I", compressed)
    if uncompressed is not None:
        out[at + 24:at + 28] = struct.pack("<I", uncompressed)
    return bytes(out)


SIZE_FAULTS = {
    "header claims 9 TiB": (lambda: tiny_npz_claiming((9 * 2 ** 40 // 8,)), "its header claims shape (1236950581248,)"),
    "header claims 2**62 items": (lambda: tiny_npz_claiming((2 ** 31, 2 ** 31)), "the member holds"),
    "header claims too few": (lambda: tiny_npz_claiming((10,)), "(80 bytes), but the member holds"),
    "directory claims 4 GB stored": (lambda: lying_directory(tiny_npz_claiming((1250,)), 4_000_000_000, 4_000_000_000),
                                     "claims 4000000000 bytes, more than the file's"),
    "directory claims more than stored": (lambda: lying_directory(tiny_npz_claiming((1250,)), None, 4_000_000_000),
                                          "claims 4000000000 bytes from"),
    "zero bytes": (lambda: b"", "is not a readable .npz file"),
    "not a zip": (lambda: b"weights, honestly", "is not a readable .npz file (BadZipFile"),
}


@pytest.mark.parametrize("fault", list(SIZE_FAULTS))
def test_absurd_sizes_are_refused_before_allocating(run, toy, deadline, fault):
    import tracemalloc

    folder, _, _ = run
    make, says = SIZE_FAULTS[fault]
    (folder / CHECKPOINT).write_bytes(make())
    tracemalloc.start()
    try:
        with deadline(10):
            refused_resume(folder, toy, "cannot be read", says)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20


def test_a_folder_in_place_of_the_checkpoint(run, toy):
    folder, _, _ = run
    (folder / CHECKPOINT).unlink()
    (folder / CHECKPOINT).mkdir()
    refused_resume(folder, toy, "no checkpoint at", "a folder there")


@pytest.mark.parametrize("problem, raw, says", [
    ("no metadata", None, f"has no {META_KEY} entry"),
    ("metadata not UTF-8", b"\xff\xfe{}", "is not valid UTF-8 JSON"),
    ("metadata not JSON", b"{'epoch': 1}", "is not valid UTF-8 JSON"),
    ("metadata a list", b"[1, 2, 3]", "its metadata is a JSON list, not an object"),
])
def test_metadata_that_is_not_a_json_object(run, toy, problem, raw, says):
    folder, arrays, _ = run
    write(folder / CHECKPOINT, arrays, raw_meta=raw)
    refused_resume(folder, toy, says)


def test_random_truncation_and_bit_flips_never_give_a_raw_error(run, toy, tmp_path, deadline):
    """Whatever the damage, resuming either refuses cleanly or (for harmless bytes) resumes the same run."""
    folder, arrays, meta = run
    good = (folder / CHECKPOINT).read_bytes()
    straight = tmp_path / "straight"
    train(config(), straight, dataset=toy)
    expected = load_checkpoint(straight / CHECKPOINT)[0]
    rng = random.Random(7)
    outcomes = {"refused": 0, "resumed": 0}
    with deadline(120):
        for trial in range(40):
            blob = bytearray(good)
            if trial % 2:
                blob = blob[:rng.randrange(len(blob))]
            else:
                for _ in range(rng.randint(1, 4)):
                    blob[rng.randrange(len(blob))] ^= 1 << rng.randrange(8)
            trial_dir = tmp_path / f"trial{trial}"
            trial_dir.mkdir()
            (trial_dir / CHECKPOINT).write_bytes(bytes(blob))
            (trial_dir / METRICS).write_bytes((folder / METRICS).read_bytes())
            try:
                train(config(), trial_dir, dataset=toy, resume=True)
            except CheckpointError as exc:
                assert str(trial_dir / CHECKPOINT) in str(exc)
                assert (trial_dir / CHECKPOINT).read_bytes() == bytes(blob)
                outcomes["refused"] += 1
                continue
            resumed = load_checkpoint(trial_dir / CHECKPOINT)[0]
            for key in expected:  # a flip the checks let through must not have changed the run
                np.testing.assert_array_equal(resumed[key], expected[key])
            outcomes["resumed"] += 1
    assert outcomes["refused"] >= 30, outcomes


runner = CliRunner()


@pytest.mark.parametrize("damage", ["no config", "truncated", "header claims 9 TiB", "a NaN weight"])
def test_the_command_line_says_what_is_wrong_without_a_traceback(tmp_path, damage):
    out = tmp_path / "run"
    args = ["train", "--model", "mlp", "--limit", "200", "--batch-size", "100", "--out", str(out)]
    assert runner.invoke(app, [*args, "--epochs", "1"]).exit_code == 0
    path = out / CHECKPOINT
    arrays, meta = load_checkpoint(path)
    if damage == "no config":
        write(path, arrays, meta_with(meta, config=DELETE))
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:5000])
    elif damage == "header claims 9 TiB":
        path.write_bytes(tiny_npz_claiming((9 * 2 ** 40 // 8,)))
    else:
        weight = next(k for k in arrays if k.startswith("model."))
        arrays[weight] = arrays[weight] * np.nan
        write(path, arrays, meta)
    before = path.read_bytes()
    result = runner.invoke(app, [*args, "--epochs", "2", "--resume"], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: checkpoint ") and str(path) in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert path.read_bytes() == before
    assert len(read_csv(out / METRICS)) == 1


def test_save_checkpoint_never_writes_non_finite_values(tmp_path):
    from nablab.train import save_checkpoint

    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, {"w": np.arange(3.0)}, {"epoch": 1})
    before = path.read_bytes()
    with pytest.raises(ValueError, match="array 'w' holds NaN or infinity; the previous checkpoint"):
        save_checkpoint(path, {"w": np.array([1.0, np.inf])}, {"epoch": 2})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]


def test_the_toy_run_is_still_resumable(run, toy):
    """The fixture's checkpoint is good: the faults above are the only reason for refusals."""
    folder, _, _ = run
    result = train(config(), folder, dataset=toy, resume=True)
    assert [r["epoch"] for r in result.history] == [1, 2]
