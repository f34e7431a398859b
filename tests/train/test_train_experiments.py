"""The two training claims run (quick sizes): their slots, evidence and statuses from grading."""

import sys

import numpy as np
import pytest

from nablab.lab import registry
from nablab.lab.experiments import train as exp
from nablab.lab.report import run_claim


def record_of(claim_id, tmp_path, **params):
    record, _ = run_claim(claim_id, tmp_path, True, 0, params)
    assert record["status"] != "error", record["details"]
    for figure in record["figures"]:
        assert (tmp_path / figure).is_file() and record["alts"][figure]
    return record


def test_both_claims_are_compute_and_figure():
    computed = registry.registered()
    assert computed["train.cifar10"] is exp.train_cifar10
    assert computed["train.diagnostics"] is exp.train_diagnostics


def test_train_cifar10_without_data_runs_mnist1d_in_both_backends(tmp_path, monkeypatch):
    monkeypatch.delenv("NABLAB_DATA", raising=False)
    record = record_of("train.cifar10", tmp_path, epochs=2, models=["logistic", "cnn1d"])
    assert record["status"] == "needs-data"
    rows = record["computed"]["mnist1d"]["models"]
    assert set(rows) == {"logistic", "cnn1d"}
    for row in rows.values():
        assert row["nablab_test_accuracy"] == row["torch_test_accuracy"]
        assert row["max_loss_difference"] < 1e-10
    assert rows["cnn1d"]["nablab_test_accuracy"] > 0.2  # above chance (10%) after two short epochs
    assert record["computed"]["cifar10"] is None
    needs = record["computed"]["needs_data"]
    assert "cifar-10-python.tar.gz" in needs and "NABLAB_DATA" in needs and "--param data=PATH" in needs
    assert needs in record["details"]
    assert record["figures"] == ["train.cifar10--mnist1d.png"]
    assert record["cross_checks"] == {exp.TORCH_TRAINING: "ran"}


def test_train_cifar10_slots_are_the_three_models_sizes_on_cifar10(tmp_path, monkeypatch):
    """Closed forms: 3072*10 + 10; 3072*100 + 100 + 100*10 + 10; 32*3*7*7 + 32 + 32*16*16*100 + 100 + 100*10 + 10."""
    monkeypatch.delenv("NABLAB_DATA", raising=False)
    record = record_of("train.cifar10", tmp_path, epochs=1, limit=200, models=["logistic"])
    assert record["slots"] == {"softmax_parameters": 3072 * 10 + 10,
                               "mlp_parameters": 3072 * 100 + 100 + 100 * 10 + 10,
                               "convnet_parameters": 32 * 3 * 49 + 32 + 32 * 16 * 16 * 100 + 100 + 100 * 10 + 10}
    assert {g["outcome"] for g in record["grades"]["003"]} == {"unanswered"}   # answer set 003 gives no numbers


def test_train_cifar10_with_data_trains_the_problem_sets_three_models(tmp_path, fake_cifar):
    record = record_of("train.cifar10", tmp_path, epochs=1, limit=200, models=["logistic"], cifar_limit=100)
    assert record["status"] == "reproduced"
    cifar = record["computed"]["cifar10"]
    assert record["computed"]["needs_data"] is None
    assert cifar["train_examples"] == 100 and set(cifar["models"]) == {"logistic", "mlp", "convnet"}
    for row in cifar["models"].values():
        assert abs(row["nablab_test_accuracy"] - row["torch_test_accuracy"]) <= 0.05  # float32, same start
    assert "train.cifar10--cifar10.png" in record["figures"]


def test_train_diagnostics_agrees_and_both_backends_match(tmp_path):
    record = record_of("train.diagnostics", tmp_path)
    assert record["status"] == "agrees"
    assert record["slots"] == {"highest_rate_too_high": True, "zero_grad_fixes_the_loop": True,
                               "never_zeroed_grad_accumulates": True}
    assert {g["slot"]: g["outcome"] for g in record["grades"]["004"]} == {
        "highest_rate_too_high": "correct", "zero_grad_fixes_the_loop": "correct",
        "never_zeroed_grad_accumulates": "unanswered"}
    c = record["computed"]
    assert c["highest_rate"] == 1.0 and c["best_rate"] != 1.0
    assert max(c["max_loss_difference_torch"]) < 1e-8
    assert c["final_mean_loss_never_zeroed"][0] > c["final_mean_loss_zeroed"][0]
    assert c["accumulation_error"] < 1e-10
    assert record["figures"] == ["train.diagnostics--diagnostics.png"]


def test_never_zeroing_sums_the_gradients():
    """Independently of the claim: two backwards without zero_grad leave the sum of both gradients in .grad."""
    import nablab.nn.functional as F
    from nablab.train.models import build_model

    rng = np.random.default_rng(0)
    model = build_model("mlp", (1, 8), 3, seed=0)
    (x1, y1), (x2, y2) = [(rng.standard_normal((5, 1, 8)), rng.integers(0, 3, 5)) for _ in range(2)]
    F.cross_entropy(model(x1), y1).backward()
    first = {k: p.grad.numpy().copy() for k, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = None
    F.cross_entropy(model(x2), y2).backward()
    second = {k: p.grad.numpy().copy() for k, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = None
    F.cross_entropy(model(x1), y1).backward()
    F.cross_entropy(model(x2), y2).backward()
    for k, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), first[k] + second[k], rtol=1e-12, atol=1e-15)


def test_without_torch_the_claims_run_on_nablab_alone(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setattr(registry.importlib.util, "find_spec",
                        lambda name, *a, _real=registry.importlib.util.find_spec: None if name == "torch"
                        else _real(name, *a))
    record = record_of("train.diagnostics", tmp_path, steps=120, lrs=[0.1, 1.0])
    assert record["cross_checks"] == {exp.TORCH_LOOP: "not run: PyTorch is not installed"}
    assert record["computed"]["torch_ran"] is False
    assert record["computed"]["max_loss_difference_torch"] == [None, None]
    assert "PyTorch is not installed" in record["summary"]


@pytest.mark.parametrize("steps", [1, 7])
def test_losses_stop_at_the_requested_step(steps, toy):
    from nablab.data import DataLoader
    from nablab.train.backends import NablabBackend
    from nablab.train.models import build_model

    backend = NablabBackend(build_model("logistic", toy.input_shape, toy.num_classes, seed=0), "sgd", 0.1)
    losses = exp._losses(backend, DataLoader(toy.x_train, toy.y_train, 100, seed=0), steps)
    assert len(losses) == steps and np.all(np.isfinite(losses))
