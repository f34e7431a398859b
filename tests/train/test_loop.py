"""The training loop: resume bit for bit, atomic checkpoints, the divergence stop, bad settings."""

import numpy as np
import pytest

import nablab.train.checkpoint as checkpoint_module
from nablab.data import DataLoader
from nablab.train import TrainConfig, TrainingDiverged, load_checkpoint, read_csv, save_checkpoint, train
from nablab.train.loop import CHECKPOINT, METRICS, Reporter

from .conftest import make_toy


def config(**kw):
    base = dict(model="cnn1d", optimizer="adam", lr=1e-2, epochs=2, batch_size=32, seed=5, dtype="float64")
    base.update(kw)
    return TrainConfig(**base)


def checkpoint_arrays(run_dir):
    return load_checkpoint(run_dir / CHECKPOINT)


def assert_same_run(a, b):
    arrays_a, meta_a = checkpoint_arrays(a)
    arrays_b, meta_b = checkpoint_arrays(b)
    assert sorted(arrays_a) == sorted(arrays_b)
    for k in arrays_a:
        assert arrays_a[k].dtype == arrays_b[k].dtype, k
        assert np.array_equal(arrays_a[k], arrays_b[k]), k  # bit for bit
    assert meta_a["history"] == meta_b["history"]
    assert (a / METRICS).read_bytes() == (b / METRICS).read_bytes()


@pytest.mark.parametrize("backend, optimizer", [("nablab", "adam"), ("nablab", "momentum"), ("torch", "adam")])
def test_resume_continues_bit_for_bit(tmp_path, toy, backend, optimizer):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(config(backend=backend, optimizer=optimizer), straight, dataset=toy)
    train(config(backend=backend, optimizer=optimizer, epochs=1), split, dataset=toy)
    first = load_checkpoint(split / CHECKPOINT)[1]
    assert first["epoch"] == 1 and len(first["history"]) == 1
    train(config(backend=backend, optimizer=optimizer), split, dataset=toy, resume=True)
    assert_same_run(straight, split)
    assert [r["epoch"] for r in read_csv(split / METRICS)] == [1, 2]
    for name in ("loss.png", "accuracy.png", "timing.csv", "config.json"):
        assert (split / name).is_file()


class Interrupt(Reporter):
    """Simulates Ctrl-C in the middle of an epoch."""

    def __init__(self, at_step):
        self.at_step, self.seen = at_step, 0

    def step(self, epoch, batch, loss):
        self.seen += 1
        if self.seen == self.at_step:
            raise KeyboardInterrupt


def test_interrupted_mid_epoch_then_resumed_matches(tmp_path, toy):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    train(config(epochs=3), straight, dataset=toy)
    with pytest.raises(KeyboardInterrupt):
        train(config(epochs=3), broken, dataset=toy, reporter=Interrupt(at_step=8 + 3))  # 8 batches per epoch
    assert load_checkpoint(broken / CHECKPOINT)[1]["epoch"] == 1
    train(config(epochs=3), broken, dataset=toy, resume=True)
    assert_same_run(straight, broken)


def test_a_failed_write_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, {"w": np.arange(5.0)}, {"epoch": 1})
    before = path.read_bytes()

    def broken_write(file, arrays):
        file.write(b"PK\x03\x04 half a zip file")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(checkpoint_module, "_write_npz", broken_write)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, {"w": np.zeros(5)}, {"epoch": 2})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]  # no temporary file left
    arrays, meta = load_checkpoint(path)
    assert meta == {"epoch": 1} and np.array_equal(arrays["w"], np.arange(5.0))


def test_a_crash_while_saving_in_training_keeps_a_resumable_run(tmp_path, toy, monkeypatch):
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    train(config(), straight, dataset=toy)
    train(config(epochs=1), crashed, dataset=toy)
    real = checkpoint_module._write_npz

    def dies_halfway(file, arrays):
        real(file, arrays)
        file.truncate(100)
        raise KeyboardInterrupt  # killed in the middle of writing

    monkeypatch.setattr(checkpoint_module, "_write_npz", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        train(config(), crashed, dataset=toy, resume=True)
    monkeypatch.setattr(checkpoint_module, "_write_npz", real)
    assert load_checkpoint(crashed / CHECKPOINT)[1]["epoch"] == 1
    train(config(), crashed, dataset=toy, resume=True)
    assert_same_run(straight, crashed)


def test_checkpoints_hold_no_pickles(tmp_path, toy):
    train(config(epochs=1), tmp_path, dataset=toy)
    with np.load(tmp_path / CHECKPOINT, allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, toy):
    train(config(epochs=1), tmp_path, dataset=toy)
    good = (tmp_path / CHECKPOINT).read_bytes()
    poisoned = make_toy()
    victim = 77
    poisoned.x_train[victim, 0, 3] = np.nan
    # where sample 77 falls in epoch 2 (index 1) of the seeded loader
    position = int(np.flatnonzero(DataLoader(toy.x_train, toy.y_train, 32, seed=5).order(1) == victim)[0])
    expected_step = 8 + position // 32 + 1
    with pytest.raises(TrainingDiverged) as info:
        train(config(epochs=3), tmp_path, dataset=poisoned, resume=True)
    err = info.value
    assert err.step == expected_step and err.epoch == 2 and np.isnan(err.loss)
    assert f"step {expected_step}" in str(err) and str(tmp_path / CHECKPOINT) in str(err)
    assert (tmp_path / CHECKPOINT).read_bytes() == good
    assert len(read_csv(tmp_path / METRICS)) == 1


def test_divergence_by_a_huge_learning_rate_is_caught(toy):
    data = make_toy(dtype=np.float32)
    cfg = dict(model="mlp", optimizer="momentum", lr=1e5, epochs=5, dtype="float32")
    with pytest.raises(TrainingDiverged, match=r"at step \d+ \(epoch 1\), more than 10000 times the first step's loss"):
        train(config(**cfg), dataset=data)
    # Without the explosion rule the same run goes on until the loss is no longer a number.
    with pytest.raises(TrainingDiverged, match=r"became (inf|nan) at step \d+"):
        train(config(**cfg, divergence_factor=None), dataset=data)


@pytest.mark.parametrize("field, value, message", [
    ("model", "resnet", "unknown model 'resnet'"),
    ("optimizer", "lbfgs", "unknown optimizer 'lbfgs'"),
    ("backend", "jax", "unknown backend 'jax'"),
    ("lr", float("nan"), "lr must be a finite non-negative number, got nan"),
    ("lr", -0.5, "lr must be a finite non-negative number, got -0.5"),
    ("epochs", -1, "epochs must be an integer >= 0, got -1"),
    ("batch_size", 0, "batch_size must be an integer >= 1, got 0"),
    ("dtype", "float16", "unknown dtype 'float16'"),
    ("limit", 0, "limit must be a positive integer"),
    ("weight_decay", -0.1, "weight_decay must be a finite non-negative number, got -0.1"),
])
def test_bad_settings_are_named(field, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**{field: value}).validate()


def test_resume_refuses_other_settings_and_a_missing_checkpoint(tmp_path, toy):
    train(config(epochs=1), tmp_path, dataset=toy)
    with pytest.raises(ValueError, match="lr: checkpoint 0.01, now 0.1"):
        train(config(lr=0.1), tmp_path, dataset=toy, resume=True)
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(config(), tmp_path, dataset=toy)
    with pytest.raises(checkpoint_module.CheckpointError, match="nothing to resume"):
        train(config(), tmp_path / "empty", dataset=toy, resume=True)


def test_a_corrupt_checkpoint_is_reported(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(checkpoint_module.CheckpointError, match="cannot be read"):
        load_checkpoint(tmp_path / "bad.npz")


def test_never_zeroing_gradients_changes_the_run(toy):
    normal = train(config(model="logistic", optimizer="sgd", lr=0.05, epochs=1), dataset=toy)
    buggy = train(config(model="logistic", optimizer="sgd", lr=0.05, epochs=1), dataset=toy, zero_grad=False)
    assert normal.step_losses[:2] == buggy.step_losses[:2]  # the first step is the same
    assert normal.step_losses[2:] != buggy.step_losses[2:]


def test_a_learning_rate_of_zero_is_a_run_that_does_not_move(toy):
    # nablab.checks' rule for learning rates: finite and >= 0, everywhere.
    result = train(config(model="logistic", optimizer="sgd", lr=0.0, epochs=1), dataset=toy)
    assert len(result.step_losses) == 8
    from nablab.train.models import build_model

    fresh = build_model("logistic", toy.input_shape, toy.num_classes, seed=config().seed, dtype=np.float64)
    for name, value in result.backend.parameters().items():
        np.testing.assert_array_equal(value, dict(fresh.named_parameters())[name].numpy())


def test_training_diverged_is_the_one_divergence_error(toy):
    from nablab.errors import DivergenceError

    with pytest.raises(DivergenceError) as info:
        train(config(model="mlp", optimizer="momentum", lr=1e5, epochs=5, dtype="float32"),
              dataset=make_toy(dtype=np.float32))
    assert isinstance(info.value, TrainingDiverged) and info.value.what == "the loss" and info.value.step >= 1
