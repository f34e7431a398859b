"""The two training claims run (quick sizes): their slots, evidence and statuses from grading."""

import importlib.util
import sys

import numpy as np
import pytest
from claim_records import record_of
from torch_absent import hide_torch

from nablab.lab import registry
from nablab.lab.experiments import train as exp
from nablab.lab.report import run_claim

#: The digits part of train.cifar10 at its smallest, for tests about the rest of the claim.
TINY_DIGITS = {"digits_seeds": 1, "digits_limit": 100, "digits_float64_steps": 2}


def test_both_claims_are_compute_and_figure():
    computed = registry.registered()
    assert computed["train.cifar10"] is exp.train_cifar10
    assert computed["train.diagnostics"] is exp.train_diagnostics


def test_train_cifar10_without_data_runs_mnist1d_in_both_backends(tmp_path, monkeypatch):
    monkeypatch.delenv("NABLAB_DATA", raising=False)
    record = record_of("train.cifar10", tmp_path, epochs=2, models=["logistic", "cnn1d"], **TINY_DIGITS)
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
    assert record["figures"][0] == "train.cifar10--mnist1d.png"
    assert record["cross_checks"] == {exp.TORCH_TRAINING: "ran"}


def test_train_cifar10_slots_are_the_three_models_sizes_on_cifar10(tmp_path, monkeypatch):
    """Closed forms: 3072*10 + 10; 3072*100 + 100 + 100*10 + 10; 32*3*7*7 + 32 + 32*16*16*100 + 100 + 100*10 + 10."""
    monkeypatch.delenv("NABLAB_DATA", raising=False)
    record = record_of("train.cifar10", tmp_path, epochs=1, limit=200, models=["logistic"], **TINY_DIGITS)
    assert record["slots"] == {"softmax_parameters": 3072 * 10 + 10,
                               "mlp_parameters": 3072 * 100 + 100 + 100 * 10 + 10,
                               "convnet_parameters": 32 * 3 * 49 + 32 + 32 * 16 * 16 * 100 + 100 + 100 * 10 + 10}
    assert {g["outcome"] for g in record["grades"]["003"]} == {"unanswered"}   # answer set 003 gives no numbers


def test_train_cifar10_with_data_trains_the_problem_sets_three_models(tmp_path, fake_cifar):
    record = record_of("train.cifar10", tmp_path, epochs=1, limit=200, models=["logistic"], cifar_limit=100,
                       **TINY_DIGITS)
    assert record["status"] == "reproduced"
    cifar = record["computed"]["cifar10"]
    assert record["computed"]["needs_data"] is None
    assert cifar["train_examples"] == 100 and set(cifar["models"]) == {"logistic", "mlp", "convnet"}
    for row in cifar["models"].values():
        assert abs(row["nablab_test_accuracy"] - row["torch_test_accuracy"]) <= 0.05  # float32, same start
    assert "train.cifar10--cifar10.png" in record["figures"]
    assert record["computed"]["digits"] is None                   # the digits stand in only until CIFAR-10 is there
    assert "CIFAR-10 is on disk" in record["computed"]["digits_not_run"]
    assert not [f for f in record["figures"] if "digits" in f]


DIGITS_FIGURES = ["train.cifar10--digits-curves.png", "train.cifar10--digits-confusion.png",
                  "train.cifar10--digits-misclassified.png"]


def test_train_cifar10_trains_the_three_models_on_the_digits_over_seeds(tmp_path, monkeypatch):
    """Real images without CIFAR-10: each model per seed in nablab and PyTorch, from the same start and batches."""
    pytest.importorskip("sklearn")
    monkeypatch.delenv("NABLAB_DATA", raising=False)
    record = record_of("train.cifar10", tmp_path, epochs=1, limit=200, models=["logistic"], digits_seeds=2,
                       digits_limit=300, digits_float64_steps=3, seed=4)
    assert record["status"] == "needs-data"          # the slots are CIFAR-10's; the digits are evidence
    d = record["computed"]["digits"]
    assert record["computed"]["digits_not_run"] is None
    assert d["seeds"] == [4, 5] and d["train_examples"] == 300 and d["test_examples"] == 300
    assert "1,797 real 8 x 8 images" in d["images"] and d["float64_steps"] == 3 and d["float64_batch"] == 20
    assert set(d["models"]) == {"logistic", "mlp", "convnet"}
    for m, row in d["models"].items():
        for backend in ("nablab", "torch"):
            accs = d["test_accuracy_per_seed"][m][backend]
            assert len(accs) == 2 and all(0.3 < a <= 1 for a in accs)   # chance is 10%; 3 steps of Adam
            assert row[f"{backend}_test_accuracy_mean"] == pytest.approx(np.mean(accs), abs=1e-15)
            assert row[f"{backend}_test_accuracy_spread"] == pytest.approx(np.std(accs, ddof=1), abs=1e-15)
        assert row["max_loss_difference_float64"] < 1e-10          # the same computation, step by step
        assert row["max_loss_difference_float32"] < 1e-4           # float32 rounding over 6 steps
        assert abs(row["nablab_test_accuracy_mean"] - row["torch_test_accuracy_mean"]) <= 2 / 300
    assert record["figures"][1:] == DIGITS_FIGURES
    assert "PyTorch dashed" in record["alts"][DIGITS_FIGURES[0]]
    assert "summed over the 2 seeds" in record["alts"][DIGITS_FIGURES[1]]
    assert "handwritten digits" in record["summary"] and "float64 steps" in record["summary"]


@pytest.mark.parametrize("tolerance", ["FLOAT32_LOSS_TOLERANCE", "FLOAT64_LOSS_TOLERANCE"])
def test_train_cifar10_self_check_fails_when_the_digits_curves_differ(tolerance, tmp_path, monkeypatch):
    """With no room at all (a difference below 0), the step-by-step check fails and the claim is an error."""
    pytest.importorskip("sklearn")
    monkeypatch.setattr(exp, tolerance, 0.0)
    record, _ = run_claim("train.cifar10", tmp_path, True, 0,
                          {"epochs": 1, "limit": 200, "models": ["logistic"], **TINY_DIGITS})
    assert record["status"] == "error"
    assert ("in float32" if tolerance.startswith("FLOAT32") else "in float64") in record["details"]


def test_train_cifar10_refuses_a_float64_replay_that_checks_no_update(tmp_path):
    record, _ = run_claim("train.cifar10", tmp_path, True, 0,
                          {"epochs": 1, "limit": 200, "models": ["logistic"], **TINY_DIGITS, "digits_float64_steps": 1})
    assert record["status"] == "error" and "digits_float64_steps=1" in record["details"]


def test_train_cifar10_without_scikit_learn_says_the_digits_were_not_trained(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    record = record_of("train.cifar10", tmp_path, epochs=1, limit=200, models=["logistic"], **TINY_DIGITS)
    assert record["computed"]["digits"] is None
    assert "scikit-learn, which is not installed" in record["computed"]["digits_not_run"]
    assert "The digits were not trained" in record["summary"]
    assert record["figures"] == ["train.cifar10--mnist1d.png"]


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
    hide_torch(monkeypatch)
    record = record_of("train.diagnostics", tmp_path, steps=120, lrs=[0.1, 1.0])
    assert record["cross_checks"] == {exp.TORCH_LOOP: "not run: PyTorch is not installed"}
    assert record["computed"]["torch_ran"] is False
    assert record["computed"]["max_loss_difference_torch"] == [None, None]
    assert "PyTorch is not installed" in record["summary"]
    if importlib.util.find_spec("sklearn") is None:
        return
    record = record_of("train.cifar10", tmp_path / "cifar", epochs=1, limit=200, models=["logistic"], **TINY_DIGITS)
    row = record["computed"]["digits"]["models"]["convnet"]
    assert set(row) == {"nablab_test_accuracy_mean", "nablab_test_accuracy_spread", "nablab_seconds_per_epoch"}
    assert set(record["computed"]["digits"]["test_accuracy_per_seed"]["convnet"]) == {"nablab"}
    assert row["nablab_test_accuracy_spread"] is None            # one seed: no spread, said as such
    assert record["computed"]["digits"]["spread"] == "one seed"
    assert "PyTorch" not in record["summary"].split("handwritten digits")[1]
    assert record["figures"][1:] == DIGITS_FIGURES


@pytest.mark.parametrize("steps", [1, 7])
def test_losses_stop_at_the_requested_step(steps, toy):
    from nablab.data import DataLoader
    from nablab.train.backends import NablabBackend
    from nablab.train.models import build_model

    backend = NablabBackend(build_model("logistic", toy.input_shape, toy.num_classes, seed=0), "sgd", 0.1)
    losses = exp._losses(backend, DataLoader(toy.x_train, toy.y_train, 100, seed=0), steps)
    assert len(losses) == steps and np.all(np.isfinite(losses))
