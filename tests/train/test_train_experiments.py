"""The two training claims run (quick sizes) and report what they computed."""


from nablab.lab import registry
from nablab.lab.registry import Context


def run(claim, tmp_path, **params):
    ctx = Context(out_dir=tmp_path, quick=True, seed=0, params=params)
    return registry.run(claim, ctx)


def test_train_cifar10_without_data_runs_mnist1d_in_both_backends(tmp_path, monkeypatch):
    monkeypatch.delenv("NABLAB_DATA", raising=False)
    result = run("train.cifar10", tmp_path, epochs=2, models=["logistic", "cnn1d"])
    assert result.status == "needs-data", result.details
    rows = result.computed["MNIST-1D"]["models"]
    assert set(rows) == {"logistic", "cnn1d"}
    for row in rows.values():
        assert row["nablab test accuracy"] == row["torch test accuracy"]
        assert row["max |loss difference| over all steps"] < 1e-10
    assert rows["cnn1d"]["nablab test accuracy"] > 0.2  # above chance (10%) after two short epochs
    assert result.computed["CIFAR-10"].startswith("not found")
    assert "cifar-10-python.tar.gz" in result.details
    assert (tmp_path / "train.cifar10--mnist1d.png").is_file()


def test_train_diagnostics_agrees_and_both_backends_match(tmp_path):
    result = run("train.diagnostics", tmp_path)
    assert result.status == "agrees", result.summary
    c = result.computed
    assert c["(a) too high"] == 1.0
    assert max(c["(b) max |nablab - PyTorch| loss per step, with / without zero_grad"]) < 1e-8
    assert c["(b) max |(.grad after backward - before) - fresh gradient|"] < 1e-10
    assert result.figures == ["train.diagnostics--diagnostics.png"]


def test_train_cifar10_with_data_trains_the_three_seed_models(tmp_path, fake_cifar):
    result = run("train.cifar10", tmp_path, epochs=1, limit=200, models=["logistic"], cifar_limit=100)
    assert result.status == "reproduced", result.summary
    cifar = result.computed["CIFAR-10"]
    assert cifar["train examples"] == 100 and set(cifar["models"]) == {"logistic", "mlp", "convnet"}
    for row in cifar["models"].values():
        assert abs(row["nablab test accuracy"] - row["torch test accuracy"]) <= 0.05  # float32, same start
    assert "train.cifar10--cifar10.png" in result.figures
