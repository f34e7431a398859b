"""``nablab train``: --hidden, --config run.toml (overridden by the options), its errors, and no
empty run folder after a run that cannot start."""

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nablab.cli import app
from nablab.train import load_checkpoint
from nablab.train.configfile import ConfigFileError, read_config_file

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--epochs", "1", "--limit", "100", "--batch-size", "50"]


def invoke(*args, env=None):
    return runner.invoke(app, ["train", *args], env={"COLUMNS": "200", **(env or {})})


def flat(text):
    return " ".join(text.split())


def saved_config(run):
    return json.loads((run / "config.json").read_text(encoding="utf-8"))


def test_hidden_sizes_the_mlp(tmp_path):
    r = invoke("--model", "mlp", "--hidden", "7", *SMALL, "--out", str(tmp_path / "run"))
    assert r.exit_code == 0, r.output
    assert saved_config(tmp_path / "run")["hidden"] == 7
    arrays, _ = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert arrays["model.1.weight"].shape == (7, 40) and arrays["model.3.weight"].shape == (10, 7)
    r = invoke("--model", "mlp", "--hidden", "0", *SMALL, "--out", str(tmp_path / "bad"))
    assert r.exit_code == 2 and "hidden must be an integer >= 1, got 0" in flat(r.output)
    assert not (tmp_path / "bad").exists()


def test_config_file_sets_the_run_and_options_override_it(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('# a small run\nmodel = "mlp"\nhidden = 9\noptimizer = "sgd"\nlr = 0.5\n'
                      'epochs = 1\nlimit = 100\nbatch_size = 25\ndivergence_factor = "off"\n', encoding="utf-8")
    r = invoke("--config", str(config), "--lr", "0.05", "--out", str(tmp_path / "run"))
    assert r.exit_code == 0, r.output
    saved = saved_config(tmp_path / "run")
    assert (saved["model"], saved["hidden"], saved["optimizer"], saved["batch_size"], saved["limit"]) == \
        ("mlp", 9, "sgd", 25, 100)
    assert saved["lr"] == 0.05                     # the option, not the file's 0.5
    assert saved["divergence_factor"] is None      # "off"
    assert "epoch 1/1  step 4 " in r.output        # 100 examples in batches of 25
    # An option typed with its default value still overrides the file.
    r = invoke("--config", str(config), "--optimizer", "adam", "--out", str(tmp_path / "run2"))
    assert r.exit_code == 0, r.output
    assert saved_config(tmp_path / "run2")["optimizer"] == "adam"


@pytest.mark.parametrize("text, message", [
    ('model = "mlp"\nhiden = 3\n', "line 2: unknown key 'hiden' (did you mean 'hidden'?)"),
    ('lr = 0.1\nbatch-size = 3\n', "line 2: unknown key 'batch-size' (did you mean 'batch_size'?)"),
    ('epochs = "ten"\n', "line 1: epochs must be an integer, got a string ('ten')"),
    ('\n\nepochs = 2.5\n', "line 3: epochs must be an integer, got a number (2.5)"),
    ('lr = true\n', "line 1: lr must be a number, got a boolean (true)"),
    ('model = "resnet"\n', "line 1: unknown model 'resnet'; choose one of"),
    ('lr = -1\n', "line 1: lr must be a finite non-negative number, got -1.0"),
    ('divergence_factor = "sometimes"\n', 'line 1: divergence_factor must be a number or "off", got a string'),
    ('model = "mlp"\nlr = \n', "line 2: not valid TOML"),
    ('[train]\nlr = 0.1\n', "line 1: unknown key 'train'"),
    ('--lr 0.1\n', "line 1: not valid TOML"),
])
def test_config_file_errors_name_file_line_and_key(tmp_path, text, message):
    config = tmp_path / "run.toml"
    config.write_text(text, encoding="utf-8")
    r = invoke("--config", str(config), "--out", str(tmp_path / "run"))
    assert r.exit_code == 2, r.output
    assert f"error: --config {config}, {message}" in flat(r.output)
    assert "Traceback" not in r.output
    assert not (tmp_path / "run").exists()


def test_config_file_that_is_not_text_or_missing(tmp_path):
    binary = tmp_path / "weights.npz"
    binary.write_bytes(b"PK\x03\x04\xff\xfe\x00")
    r = invoke("--config", str(binary), "--out", str(tmp_path / "run"))
    assert r.exit_code == 2 and f"--config {binary}: not a TOML file: not UTF-8 text" in flat(r.output)
    r = invoke("--config", str(tmp_path / "none.toml"), "--out", str(tmp_path / "run"))
    assert r.exit_code == 2 and f"--config {tmp_path / 'none.toml'}: cannot read it: No such file" in flat(r.output)


def test_config_error_carries_key_and_line(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('lr = 0.1\n"seed" = -3\n', encoding="utf-8")
    with pytest.raises(ConfigFileError) as caught:
        read_config_file(config)
    assert (caught.value.key, caught.value.line) == ("seed", 2)
    assert "seed must be a non-negative integer, got -3" in str(caught.value)


def test_config_data_path_is_read_from_the_files_folder(tmp_path):
    (tmp_path / "cfg").mkdir()
    config = tmp_path / "cfg" / "run.toml"
    config.write_text('data = "cifar"\n', encoding="utf-8")
    assert read_config_file(config) == {"data": str(tmp_path / "cfg" / "cifar")}


def test_readme_config_example_is_a_valid_config(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Command line", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    config = tmp_path / "run.toml"
    config.write_text("\n".join(line.strip() for line in block.splitlines()), encoding="utf-8")
    assert read_config_file(config)["model"] == "mlp"
    assert "nablab train --config run.toml" in section


def test_missing_cifar_leaves_no_run_folder(tmp_path):
    out = tmp_path / "runs" / "cifar"
    r = invoke("--dataset", "cifar10", "--model", "convnet", "--out", str(out), env={"NABLAB_DATA": ""})
    assert r.exit_code == 2 and "CIFAR-10 not found" in r.output
    assert not (tmp_path / "runs").exists()       # neither the folder nor its parent


def test_a_failed_run_keeps_the_users_folder(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    r = invoke("--dataset", "cifar10", "--model", "convnet", "--out", str(out), env={"NABLAB_DATA": ""})
    assert r.exit_code == 2
    assert out.is_dir() and list(out.iterdir()) == []
    (out / "notes.txt").write_text("keep me", encoding="utf-8")
    r = invoke("--dataset", "cifar10", "--model", "convnet", "--out", str(out), env={"NABLAB_DATA": ""})
    assert r.exit_code == 2 and (out / "notes.txt").read_text(encoding="utf-8") == "keep me"


def test_out_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "run.txt"
    target.write_text("x", encoding="utf-8")
    r = invoke(*SMALL, "--out", str(target))
    assert r.exit_code == 2 and f"--out {target} exists and is not a folder" in flat(r.output)
    assert target.read_text(encoding="utf-8") == "x"
