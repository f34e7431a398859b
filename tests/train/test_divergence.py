"""The divergence rule: a loss above divergence_factor times the first step's loss, or not finite, stops the run."""

import math

import numpy as np
import pytest
from typer.testing import CliRunner

from nablab.cli import app
from nablab.data import DataLoader
from nablab.train import NablabBackend, TrainConfig, TrainingDiverged, load_checkpoint, read_csv, train
from nablab.train.loop import CHECKPOINT, DIVERGENCE_FACTOR, METRICS
from nablab.train.models import build_model

from .conftest import make_toy


def config(**kw):
    base = dict(model="mlp", hidden=16, optimizer="sgd", lr=0.05, epochs=3, batch_size=32, seed=2, dtype="float64")
    base.update(kw)
    return TrainConfig(**base)


VICTIM = 77


def exploding_toy(checkpoint=None):
    """The toy data with one training example scaled by 1e9 and labelled as the class the model (initial, or
    from ``checkpoint``) likes least: its batch's loss is about 1e8, huge but finite."""
    data = make_toy()
    data.x_train[VICTIM] *= 1e9
    model = build_model("mlp", data.input_shape, data.num_classes, seed=2, dtype=np.float64, hidden=16)
    if checkpoint is not None:
        arrays = load_checkpoint(checkpoint)[0]
        model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model.")})
    data.y_train[VICTIM] = int(np.argmin(model(data.x_train[VICTIM:VICTIM + 1]).data))
    return data


def victim_step(toy, epoch_index):
    order = DataLoader(toy.x_train, toy.y_train, 32, seed=2).order(epoch_index)
    return 8 * epoch_index + int(np.flatnonzero(order == VICTIM)[0]) // 32 + 1  # 8 batches per epoch


def test_the_default_is_documented():
    assert DIVERGENCE_FACTOR == 1e4 and TrainConfig().divergence_factor == 1e4


def test_an_explosion_stops_at_its_step_and_keeps_the_last_checkpoint(tmp_path, toy, deadline):
    train(config(epochs=1), tmp_path, dataset=toy)
    good = (tmp_path / CHECKPOINT).read_bytes()
    first = float(load_checkpoint(tmp_path / CHECKPOINT)[0]["history.step_loss"][0])
    with deadline(30), pytest.raises(TrainingDiverged) as info:
        train(config(), tmp_path, dataset=exploding_toy(tmp_path / CHECKPOINT), resume=True)
    err = info.value
    assert err.step == victim_step(toy, 1) and err.epoch == 2
    assert math.isfinite(err.loss) and err.loss > 1e4 * first
    # The reference is the run's first step, kept in the checkpoint, not the first step after resuming.
    message = str(err)
    assert f"at step {err.step} (epoch 2), more than 10000 times the first step's loss {first:.4g}" in message
    assert f"the last good checkpoint is {tmp_path / CHECKPOINT}" in message
    assert (tmp_path / CHECKPOINT).read_bytes() == good
    assert len(read_csv(tmp_path / METRICS)) == 1


def test_turned_off_the_same_run_trains_to_the_end_with_an_exploded_loss(toy, deadline):
    """What the rule is for: without it, the run finishes with losses around 1e12 (NaN-only checking)."""
    with deadline(30):
        result = train(config(divergence_factor=None), dataset=exploding_toy())
    assert len(result.history) == 3
    assert max(result.step_losses) > 1e4 * result.step_losses[0] and result.final["train_loss"] > 1e6


def test_a_larger_factor_lets_the_same_spike_pass(toy, deadline):
    with deadline(30), pytest.raises(TrainingDiverged) as info:
        train(config(), dataset=exploding_toy())
    above = info.value.loss * 10  # the first loss is about 1.4, so this factor puts the limit above the spike
    with deadline(30):
        try:
            train(config(divergence_factor=above), dataset=exploding_toy())
        except TrainingDiverged as exc:
            assert exc.step != info.value.step


@pytest.mark.parametrize("value", [1, 0.5, 0, -3.0, float("inf"), float("nan"), True, "1e4"])
def test_bad_factors_are_named(value):
    with pytest.raises(ValueError, match="divergence_factor must be a finite number > 1"):
        TrainConfig(divergence_factor=value).validate()


@pytest.mark.parametrize("value", [1.5, 10, np.float64(100.0), None])
def test_good_factors(value):
    factor = TrainConfig(divergence_factor=value).validate().divergence_factor
    assert factor == (None if value is None else float(value))


def test_a_non_finite_optimizer_state_is_never_saved(tmp_path, toy, monkeypatch):
    train(config(optimizer="adam", lr=1e-2, epochs=1), tmp_path, dataset=toy)
    good = (tmp_path / CHECKPOINT).read_bytes()
    real = NablabBackend.state_arrays
    calls = []

    def poisoned(self):
        state = real(self)
        calls.append(1)
        if len(calls) > 1:  # the first call only reads the fresh model's names and shapes
            key = next(k for k, v in state.items() if k.startswith("optim.") and v.size > 1)
            state[key] = np.full_like(state[key], np.inf)
        return state

    monkeypatch.setattr(NablabBackend, "state_arrays", poisoned)
    with pytest.raises(TrainingDiverged, match=r"optim\.\S+ became non-finite at step 16 \(epoch 2\)"):
        train(config(optimizer="adam", lr=1e-2), tmp_path, dataset=toy, resume=True)
    assert (tmp_path / CHECKPOINT).read_bytes() == good


runner = CliRunner()


@pytest.mark.parametrize("flag, code, says", [
    ([], 1, "at step 2 (epoch 1), more than 10000 times the first step's loss"),
    (["--divergence-factor", "1e20"], 0, "epoch 1/1"),
    (["--divergence-factor", "off"], 0, "epoch 1/1"),
    (["--divergence-factor", "1"], 2, "--divergence-factor must be a finite number > 1 (or off to turn the check off)"),
    (["--divergence-factor", "soon"], 2, "--divergence-factor must be a number > 1 or 'off', got 'soon'"),
])
def test_the_command_line_option(tmp_path, deadline, flag, code, says):
    with deadline(60):
        result = runner.invoke(app, ["train", "--model", "mlp", "--lr", "1e6", "--epochs", "1", "--limit", "200",
                                     "--batch-size", "50", "--out", str(tmp_path / "r"), *flag],
                               env={"COLUMNS": "300"})
    assert result.exit_code == code, result.output
    assert says in " ".join(result.output.split())
    assert "Traceback" not in result.output
