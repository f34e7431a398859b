"""A training result in a notebook: ``TrainResult._repr_html_`` is a small, well-formed table."""

import xml.etree.ElementTree as ET

from nablab.train import TrainConfig, train
from nablab.train.loop import TrainResult

from .conftest import make_toy


def parse(page):
    return ET.fromstring(f"<div>{page}</div>")


def test_final_metrics_as_a_table(tmp_path):
    result = train(TrainConfig(model="logistic", optimizer="sgd", lr=0.1, epochs=2, batch_size=64, dtype="float64"),
                   tmp_path / "run", dataset=make_toy())
    root = parse(result._repr_html_())
    heads = [th.text for th in root.iter("th")]
    cells = [td.text for td in root.iter("td")]
    assert heads == ["epochs", "steps", "train loss", "train acc", "test loss", "test acc", "s / epoch"]
    final = result.history[-1]
    assert cells[:6] == ["2", "8", f"{final['train_loss']:.4f}", f"{100 * final['train_acc']:.2f}%",
                         f"{final['test_loss']:.4f}", f"{100 * final['test_acc']:.2f}%"]
    assert root.find(".//caption").text == "logistic on mnist1d (nablab, sgd, lr=0.1)"
    assert str(tmp_path / "run") in "".join(root.itertext())


def test_text_is_escaped_and_an_empty_run_says_so():
    config = TrainConfig(model="<b>m</b>", dataset="a & b")   # not validated: only shown
    root = parse(TrainResult(config, [], [], [], None, "runs/<x>")._repr_html_())
    assert root.find(".//b") is None and root.find(".//table") is None
    assert "<b>m</b> on a & b" in "".join(root.itertext()) and "no epochs run" in "".join(root.itertext())
    history = [{"epoch": 1, "step": 3, "train_loss": 12346.0, "train_acc": 0.5, "test_loss": 2.25, "test_acc": 0.25}]
    root = parse(TrainResult(config, history, [], [], None, "runs/<x>")._repr_html_())
    assert [td.text for td in root.iter("td")] == ["1", "3", "1.235e+04", "50.00%", "2.2500", "25.00%"]
    assert "runs/<x>" in "".join(root.itertext())
