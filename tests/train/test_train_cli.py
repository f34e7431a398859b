"""``nablab train`` end to end on a small MNIST-1D subset, and its error messages."""

import io

import pytest
from rich.console import Console
from typer.testing import CliRunner

from nablab.cli import app
from nablab.train import TrainConfig, read_csv, train
from nablab.cli.train import _RichReporter

from .conftest import make_toy

runner = CliRunner()


def invoke(*args, env=None):
    return runner.invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})


@pytest.mark.parametrize("backend", ["nablab", "torch"])
def test_one_epoch_on_a_subset_then_resume(tmp_path, backend):
    out = tmp_path / "run"
    args = ["train", "--dataset", "mnist1d", "--model", "cnn1d", "--optimizer", "adam", "--lr", "0.01",
            "--seed", "1", "--backend", backend, "--batch-size", "50", "--limit", "200", "--out", str(out)]
    result = invoke(*args, "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert "epoch 1/1  step 4  train loss" in result.output  # plain lines: the runner is not a terminal
    assert "\x1b[" not in result.output
    for name in ("metrics.csv", "checkpoint.npz", "loss.png", "accuracy.png"):
        assert (out / name).is_file()
    result = invoke(*args, "--epochs", "2", "--resume")
    assert result.exit_code == 0, result.output
    assert "resuming after epoch 1" in result.output
    assert [r["step"] for r in read_csv(out / "metrics.csv")] == [4, 8]


@pytest.mark.parametrize("args, message", [
    (["--model", "resnet"], "unknown model 'resnet'; choose one of logistic, mlp, resmlp, convnet, cnn1d"),
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--optimizer", "lbfgs"], "unknown optimizer 'lbfgs'"),
    (["--backend", "jax"], "unknown backend 'jax'"),
    (["--lr", "-1"], "lr must be a finite non-negative number, got -1.0"),
    (["--epochs", "-2"], "epochs must be an integer >= 0, got -2"),
    (["--batch-size", "0"], "batch_size must be an integer >= 1, got 0"),
    (["--limit", "0"], "limit must be a positive integer"),
    (["--model", "cnn1d", "--dataset", "cifar10", "--data", "/nonexistent/cifar"], "/nonexistent/cifar does not exist"),
    (["--resume"], "nothing to resume"),
])
def test_bad_input_is_named(tmp_path, args, message):
    result = invoke("train", "--out", str(tmp_path / "r"), *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def test_missing_cifar_explains_how_to_get_it(tmp_path):
    result = invoke("train", "--dataset", "cifar10", "--model", "convnet", "--out", str(tmp_path / "r"),
                    env={"NABLAB_DATA": ""})
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "cifar-10-python.tar.gz" in text and "--data PATH" in text


def test_divergence_exits_1_with_the_step(tmp_path):
    result = invoke("train", "--model", "mlp", "--optimizer", "momentum", "--lr", "1e5", "--epochs", "3",
                    "--limit", "500", "--out", str(tmp_path / "r"))
    assert result.exit_code == 1, result.output
    assert "at step" in result.output and "no checkpoint was written before it" in result.output


def test_rich_progress_bar_on_a_terminal():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    train(TrainConfig(model="logistic", optimizer="sgd", lr=0.1, epochs=2, batch_size=64, dtype="float64"),
          dataset=make_toy(), reporter=_RichReporter(console))
    text = buffer.getvalue()
    assert "\x1b[" in text and "epoch 2/2" in text and "8/8" in text


def test_cifar10_pipeline_with_data(tmp_path, fake_cifar):
    out = tmp_path / "c"
    result = invoke("train", "--dataset", "cifar10", "--model", "convnet", "--epochs", "1", "--limit", "64",
                    "--batch-size", "32", "--data", "/some/where", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert fake_cifar == ["/some/where"]
    assert len(read_csv(out / "metrics.csv")) == 1
    result = invoke("train", "--dataset", "cifar10", "--model", "cnn1d", "--out", str(tmp_path / "d"))
    assert result.exit_code == 2
    assert "cnn1d is the MNIST-1D CNN for 1-D signals (C, L); got input shape (3, 32, 32)" in " ".join(result.output.split())


def test_ctrl_c_says_how_to_resume(tmp_path, monkeypatch):
    import nablab.train.loop as loop

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "train", interrupted)
    result = invoke("train", "--out", str(tmp_path / "r"))
    assert result.exit_code == 130
    assert "interrupted before the first epoch ended" in result.output
