"""The command line: help texts, jacobian, graph, lab and reproduce."""

import doctest
import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import nablab.cli
from nablab.cli import app
from nablab.lab.claims import CLAIMS
from nablab.lab.mathtext import plain_math

runner = CliRunner()
SEED_F = "exp(exp(w1) + exp(2*w2)) + sigmoid(exp(w1) + exp(2*w2)); w1*w2 + max(w1, w2)"


def invoke(*args):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if hasattr(cmd, "commands"):  # a group (typer vendors its own click classes)
            yield from _commands(cmd, prefix + (name,))


ALL_COMMANDS = [()] + [path for path, _ in _commands(typer.main.get_command(app))]


def test_every_command_is_there():
    assert {("reproduce",), ("jacobian",), ("graph",), ("lab",), ("lab", "list"),
            ("lab", "run")} <= set(ALL_COMMANDS)


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "nablab")
def test_help_has_an_example(path):
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Example" in result.output
    assert "Usage: nablab" in result.output


def _flags(command):
    """The options of ``command`` that take no value, with the help option."""
    ctx = command.make_context("nablab", [], resilient_parsing=True)
    return [p for p in command.get_params(ctx) if getattr(p, "is_flag", False)]


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "nablab")
def test_help_shows_no_type_after_flags_and_no_braces_in_usage(path):
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    usage = [line for line in result.output.splitlines() if "Usage:" in line]
    assert len(usage) == 1 and "{" not in usage[0] and "}" not in usage[0], usage
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    flags = _flags(command)
    assert any("--help" in f.opts for f in flags)
    for flag in flags:   # the flag's row: its names, then straight to the help text
        row = next(line for line in result.output.splitlines() if f" {flag.opts[0]} " in line)
        assert "<" not in row.split(flag.opts[0], 1)[1].split(flag.help.split()[0])[0], row


@pytest.mark.parametrize("path, usage", [
    (("lab", "run"), "nablab lab run [OPTIONS] CLAIM_ID"),
    (("lab", "show"), "nablab lab show [OPTIONS] CLAIM_ID"),
    (("grade",), "nablab grade [OPTIONS] [SHEETS]..."),
    (("arch",), "nablab arch [OPTIONS] SPEC"),
    (("jacobian",), "nablab jacobian [OPTIONS] EXPRESSIONS"),
    (("lab",), "nablab lab [OPTIONS] COMMAND [ARGS]..."),
])
def test_usage_lines_name_arguments_in_capitals(path, usage):
    result = invoke(*path, "--help")
    assert f"Usage: {usage}" in result.output
    assert "Missing argument 'CLAIM_ID'" in " ".join(invoke("lab", "run").output.split())


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "nablab", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "jacobian" in out.stdout and "reproduce" in out.stdout


# -- jacobian ---------------------------------------------------------------------


def seed_function(w):
    """The seed's (f1, f2), written out by hand in NumPy."""
    u = np.exp(w[0]) + np.exp(2 * w[1])
    return np.array([np.exp(u) + 1 / (1 + np.exp(-u)), w[0] * w[1] + max(w[0], w[1])])


def seed_jacobian(w):
    u = np.exp(w[0]) + np.exp(2 * w[1])
    s = 1 / (1 + np.exp(-u))
    d = np.exp(u) + s * (1 - s)
    # At (1, -1) max(w1, w2) = w1, so d max / d w = (1, 0).
    return np.array([[d * np.exp(w[0]), d * 2 * np.exp(2 * w[1])], [w[1] + 1, w[0]]])


def test_jacobian_json_matches_hand_derivation():
    result = invoke("jacobian", SEED_F, "--vars", "w1,w2", "--at", "1,-1", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    w = np.array([1.0, -1.0])
    assert doc["variables"] == ["w1", "w2"] and doc["eps"] == 0.01
    np.testing.assert_allclose(doc["value"], seed_function(w), rtol=1e-14)
    exact = seed_jacobian(w)
    np.testing.assert_allclose(doc["forward_mode"], exact, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(doc["reverse_mode"], exact, rtol=1e-12, atol=1e-15)
    eps = 0.01
    fd = np.stack([(seed_function(w + eps * e) - seed_function(w)) / eps for e in np.eye(2)], 1)
    cd = np.stack([(seed_function(w + eps * e) - seed_function(w - eps * e)) / (2 * eps)
                   for e in np.eye(2)], 1)
    np.testing.assert_allclose(doc["forward_difference"], fd, rtol=1e-10)
    np.testing.assert_allclose(doc["central_difference"], cd, rtol=1e-10)
    # the forward difference with this step is visibly off; central is much closer
    assert abs(fd[0, 0] - exact[0, 0]) > 0.5 > 20 * abs(cd[0, 0] - exact[0, 0])


def test_jacobian_tables_show_all_four_methods():
    result = invoke("jacobian", SEED_F, "--vars", "w1,w2", "--at", "1,-1", "--eps", "0.001")
    assert result.exit_code == 0, result.output
    for label in ("forward diff (eps=0.001)", "central diff", "forward mode", "reverse mode",
                  "d f1 / d w2", "18.29593226"):
        assert label in result.output
    assert f"{seed_jacobian(np.array([1.0, -1.0]))[0, 0]:.10g}" in result.output


def test_jacobian_refuses_code_and_runs_nothing(tmp_path):
    target = tmp_path / "pwned"
    result = invoke("jacobian", f"__import__('os').system('touch {target}')", "--vars", "x",
                    "--at", "1")
    assert result.exit_code == 2
    assert "attribute access (.system) is not allowed (column 17)" in result.output
    assert "^" in result.output
    assert not target.exists()


@pytest.mark.parametrize("args, message", [
    (["x + y", "--vars", "x,y", "--at", "1"], "--at gives 1 value(s) but --vars names 2"),
    (["x", "--vars", "x", "--at", "one"], "item 1 ('one') is not a number"),
    (["x", "--vars", "x,,y", "--at", "1,2"], "empty variable name"),
    (["x", "--vars", "x", "--at", "1", "--eps", "0"], "--eps 0.0"),
    (["x + zz", "--vars", "x", "--at", "1"], "unknown name 'zz'"),
    (["x @ x", "--vars", "x", "--at", "1"], "cannot evaluate '@'"),
])
def test_jacobian_errors_name_the_problem(args, message):
    result = invoke("jacobian", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_jacobian_of_a_constant_row_is_zero():
    result = invoke("jacobian", "3; x * y", "--vars", "x,y", "--at", "2,5", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["reverse_mode"] == [[0.0, 0.0], [5.0, 2.0]]
    assert doc["forward_mode"] == [[0.0, 0.0], [5.0, 2.0]]


# -- graph ------------------------------------------------------------------------


def test_graph_writes_dot_with_values_and_gradients(tmp_path):
    out = tmp_path / "g.dot"
    result = invoke("graph", "(x + y) * (y + 1)", "--vars", "x,y", "--at", "1,2", "--out", str(out))
    assert result.exit_code == 0, result.output
    dot = out.read_text()
    assert dot.startswith("digraph")
    assert "grad 6" in dot  # d/dy (x + y)(y + 1) = (y + 1) + (x + y) = 6 at (1, 2)
    assert "multiply" in result.output


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_graph_renders_svg(tmp_path):
    out = tmp_path / "sub" / "g.svg"
    result = invoke("graph", "x * exp(y)", "--vars", "x,y", "--at", "1,0", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "<svg" in out.read_text()


def test_graph_errors(tmp_path):
    r = invoke("graph", "x; x", "--vars", "x", "--at", "1", "--out", str(tmp_path / "g.svg"))
    assert r.exit_code == 2 and "one expression" in r.output
    r = invoke("graph", "x", "--vars", "x", "--at", "1", "--out", str(tmp_path / "g.txt"))
    assert r.exit_code == 2 and "'" + str(tmp_path / "g.txt") + "'" in r.output
    r = invoke("graph", "2", "--vars", "x", "--at", "1", "--out", str(tmp_path / "g.dot"))
    assert r.exit_code == 2 and "does not depend" in r.output


# -- lab and reproduce -----------------------------------------------------------


def failing_experiment(run):
    raise ValueError("bad input 17")


@pytest.fixture
def fake_registry(fake_experiments, fake_result):
    def fake_experiment(run):
        steps = run.params["steps"]
        return fake_result(f"Ran {steps} steps.", steps=steps, twice=2 * steps)

    fake_experiments({"data.one-hot": fake_experiment, "theory.gd-rate": failing_experiment},
                     params={"steps": 10})


def test_lab_list_shows_every_claim(fake_registry):
    result = invoke("lab", "list")
    assert result.exit_code == 0, result.output
    for c in CLAIMS:
        assert c.id in result.output
    assert "34 claims (2 with an experiment)" in result.output


def test_lab_list_in_a_pipe_gives_whole_tab_separated_lines():
    result = runner.invoke(app, ["lab", "list"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:2] == ["# 34 claims (34 with an experiment)", "claim\tproblem set\ttitle"]
    assert lines[2:] == [f"{c.id}\t{c.seed}\t{plain_math(c.title)}" for c in CLAIMS]   # nothing cut, no borders


@pytest.mark.parametrize("width", [80, 120])
def test_lab_list_on_a_terminal_fits_the_width(monkeypatch, width):
    import io
    import re

    from rich.console import Console

    buffer = io.StringIO()
    monkeypatch.setattr(nablab.cli.lab, "console", Console(file=buffer, force_terminal=True, width=width,
                                                           color_system=None))
    nablab.cli.lab.lab_list()
    lines = buffer.getvalue().splitlines()
    assert max(len(line) for line in lines) <= width
    text = " ".join(buffer.getvalue().split())
    for c in CLAIMS:
        assert re.search(rf"^ ?{re.escape(c.id)} ", "\n".join(lines), re.M)   # ids whole, first on a line
        title = plain_math(c.title)              # the math as plain text: λ_min, Xᵀ
        assert " ".join(title.split()) in re.sub(r"(\S+ )?§\S+ ", "", text) or \
            all(word in text for word in title.split())


def test_lab_run_with_params(tmp_path, fake_registry):
    out = tmp_path / "run"
    result = invoke("lab", "run", "data.one-hot", "--param", "steps=4", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "reproduced" in result.output and "Ran 4 steps." in result.output
    saved = json.loads((out / "result.json").read_text())
    assert saved["computed"] == {"steps": 4, "twice": 8}


def test_lab_run_refuses_an_unknown_param_and_lists_the_known_ones(tmp_path, fake_registry):
    out = tmp_path / "run"
    r = invoke("lab", "run", "data.one-hot", "--param", "steps=4", "-p", "stpes=1", "--out", str(out))
    assert r.exit_code == 2
    assert "data.one-hot has no parameter 'stpes' (did you mean 'steps'?)" in r.output
    assert "It accepts: steps (default: 10)" in r.output
    assert not out.exists()                                   # refused before running anything


def test_lab_run_lists_the_parameters_of_a_real_experiment():
    r = invoke("lab", "run", "theory.gd-1d-divergence", "--param", "step=3")
    assert r.exit_code == 2
    assert "(did you mean 'steps'?)" in r.output
    for name in ("lr_max", "n_lr", "starts", "steps"):
        assert f"{name} (default: " in r.output


def test_lab_run_errors(tmp_path, fake_registry):
    r = invoke("lab", "run", "nope")
    assert r.exit_code == 2 and "unknown claim id 'nope'" in r.output
    r = invoke("lab", "run", "cnn.filter-design")
    assert r.exit_code == 2 and "has no experiment yet" in r.output
    r = invoke("lab", "run", "data.one-hot", "--param", "steps", "--out", str(tmp_path))
    assert r.exit_code == 2 and "key=value" in r.output
    r = invoke("lab", "run", "data.one-hot", "--param", "steps=x", "--out", str(tmp_path))
    assert r.exit_code == 2, r.output
    assert "error: --param steps=x: steps expects an integer (its default is 10)" in r.output
    assert "Traceback" not in r.output
    r = invoke("lab", "run", "theory.gd-rate", "--out", str(tmp_path))
    assert r.exit_code == 1 and "bad input 17" in r.output


def test_reproduce_writes_report_and_fails_on_errors(tmp_path, fake_registry):
    out = tmp_path / "report"
    r = invoke("reproduce", "--out", str(out), "--only", "data.one-hot")
    assert r.exit_code == 0, r.output
    assert (out / "index.html").is_file()
    assert "1 claims (1 reproduced)" in r.output
    r = invoke("reproduce", "--out", str(out), "--quick")
    assert r.exit_code == 1  # one experiment raised: the report is written, the run fails
    claims = json.loads((out / "claims.json").read_text())
    assert len(claims) == len(CLAIMS)
    assert {c["id"]: c["status"] for c in claims}["theory.gd-rate"] == "error"


def test_reproduce_unknown_only_id(tmp_path, fake_registry):
    r = invoke("reproduce", "--out", str(tmp_path / "r"), "--only", "data.one-hot,bogus.id")
    assert r.exit_code == 2
    assert "error: --only: unknown claim id 'bogus.id'; `nablab lab list` lists the 34 claims" in r.output
    r = invoke("reproduce", "--out", str(tmp_path / "r"), "--only", "data.one-hto,optm.*")
    assert r.exit_code == 2
    assert ("unknown claim ids 'data.one-hto' (did you mean 'data.one-hot'?), 'optm.*' (did you mean "
            "'optim.*'?)") in r.output
    assert "theory.gd-rate" not in r.output                  # not all 34 ids
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("only, ran", [
    ("data.*", ["data.one-hot"]),
    ("theory.gd-r*,data.", ["theory.gd-rate", "data.one-hot"]),
    ("data", ["data.one-hot"]),
])
def test_reproduce_only_takes_globs_prefixes_and_groups(tmp_path, fake_registry, only, ran):
    out = tmp_path / "r"
    r = invoke("reproduce", "--out", str(out), "--only", only)
    assert r.exit_code == (1 if "theory.gd-rate" in ran else 0), r.output
    assert [c["id"] for c in json.loads((out / "claims.json").read_text())] == ran


def test_reproduce_shows_n_of_total_with_time_and_an_estimate(tmp_path, fake_registry):
    r = runner.invoke(app, ["reproduce", "--out", str(tmp_path / "r"), "--only", "data.one-hot,autodiff.graph"],
                      env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    first = next(line for line in lines if line.startswith("[1/2]"))
    second = next(line for line in lines if line.startswith("[2/2]"))
    assert "autodiff.graph" in first and "so far, about" in first and "left)" in first
    assert "data.one-hot" in second and "reproduced" in second
    assert "\x1b[" not in r.output                            # not a terminal: plain lines
    assert max(len(line) for line in lines if str(tmp_path) not in line) <= 80


def test_reproduce_progress_on_a_terminal_shows_a_claim_from_within():
    import io

    from rich.console import Console

    from nablab.cli._progress import ReproduceProgress

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=80, color_system=None)
    earlier = {"train.cifar10": 30.0, "data.one-hot": 1.0}
    with ReproduceProgress(console, ["train.cifar10", "data.one-hot"], earlier) as shown:
        shown.claim_step("train.cifar10", 2, 6, "MNIST-1D: two-layer MLP in torch")
        shown.progress.refresh()
        shown.claim_done({"id": "train.cifar10", "status": "needs-data", "seconds": 31.0})
        shown.progress.refresh()
    text = buffer.getvalue()
    assert "[1/2] train.cifar10" in text and "MNIST-1D: two-layer MLP in torch" in text and "2/6" in text
    assert "about 31 s left" in text                   # the earlier run's times of the claims
    assert "[1/2] needs-data  train.cifar10  31.00 s" in text
    assert "[2/2] data.one-hot" in text


def test_reproduce_progress_in_a_log_says_where_a_long_claim_is(monkeypatch):
    import io

    from rich.console import Console

    from nablab.cli import _progress

    monkeypatch.setattr(_progress, "PLAIN_EVERY", 0.0)
    buffer = io.StringIO()
    with _progress.ReproduceProgress(Console(file=buffer, width=80), ["linop.conv1d-gd"]) as shown:
        shown.claim_step("linop.conv1d-gd", 3, 8, "the loop's time at n = 100000")
    assert buffer.getvalue() == "      linop.conv1d-gd: 3/8 the loop's time at n = 100000\n"   # under "[1/1]"


def test_previous_report_times_feed_the_estimate(tmp_path, fake_registry):
    from nablab.cli._progress import previous_seconds

    out = tmp_path / "r"
    assert invoke("reproduce", "--out", str(out), "--only", "data.one-hot", "--quick").exit_code == 0
    assert set(previous_seconds(out, quick=True)) == {"data.one-hot"}
    assert previous_seconds(out, quick=False) == {}           # other sizes: no use
    assert previous_seconds(tmp_path / "nothing", quick=True) == {}


def test_reproduce_summaries_fit_80_columns(tmp_path, fake_experiments, fake_result):
    long = "A summary that goes on " + "and on " * 60 + "to the end."
    fake_experiments({"data.one-hot": lambda run: fake_result(long)})
    r = runner.invoke(app, ["reproduce", "--out", str(tmp_path / "r"), "--only", "data.one-hot"],
                      env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    at = lines.index("data.one-hot  reproduced  " + lines[lines.index("Claims") + 1].split("  ")[-1])
    summary = lines[at + 1:at + 3]
    assert summary[0].startswith("    A summary that goes on and on") and summary[1].endswith("…")
    assert all(70 <= len(line) <= 80 for line in summary)
    assert lines[at + 3].startswith("1 claims")


@pytest.mark.parametrize("module", ["nablab.cli", "nablab.cli.lab", "nablab.cli.tools", "nablab.cli.train",
                                    "nablab.cli._progress", "nablab.cli._common"])
def test_doctests(module):
    import importlib

    assert doctest.testmod(importlib.import_module(module)).failed == 0


def test_the_cli_is_a_package_outside_the_library():
    import pathlib

    import nablab

    root = pathlib.Path(nablab.__file__).parent
    assert (root / "cli" / "__init__.py").is_file() and not (root / "cli.py").exists()
    assert not (root / "train" / "cli.py").exists() and not (root / "arch" / "cli.py").exists()
    assert nablab.cli.app is app and callable(nablab.cli.main)


def test_jacobian_differences_are_numerical_jacobians():
    from nablab.expr import parse

    e = parse("exp(a) * b; a / b + sin(a * b)", ["a", "b"])
    at = np.array([0.4, -1.3])
    res = nablab.cli.jacobians(e, at, 1e-3)
    f = lambda w: np.asarray(e.evaluate({"a": w[0], "b": w[1]}), dtype=float)  # noqa: E731
    for scheme in ("forward", "central"):
        np.testing.assert_array_equal(res[f"{scheme}_difference"], nablab.numerical_jacobian(f, at, 1e-3, scheme))
    np.testing.assert_allclose(res["central_difference"], res["reverse_mode"], rtol=1e-5)


def test_jacobians_handles_many_variables():
    from nablab.expr import parse

    names = [f"v{i}" for i in range(5)]
    e = parse(" + ".join(f"{i + 1}*{n}*{n}" for i, n in enumerate(names)), names)
    at = np.arange(5.0)
    res = nablab.cli.jacobians(e, at, 1e-6)
    np.testing.assert_allclose(res["reverse_mode"][0], 2 * np.arange(1, 6) * at)
    assert math.isclose(res["value"][0], sum((i + 1) * i * i for i in range(5)))


def test_graph_without_graphviz_draws_with_matplotlib(tmp_path, monkeypatch):
    import nablab.autodiff.graph as graph_module

    monkeypatch.setattr(graph_module.shutil, "which", lambda name: None)
    for suffix, head in ((".svg", b"<?xml"), (".png", b"\x89PNG"), (".pdf", b"%PDF")):
        out = tmp_path / f"graph{suffix}"
        r = invoke("graph", "(x + y) * (y + 1)", "--vars", "x,y", "--at", "1,2", "--out", str(out))
        assert r.exit_code == 0, r.output
        assert out.read_bytes().startswith(head)
        assert f"wrote {out} (drawn with matplotlib" in r.output
    assert not list(tmp_path.glob("*.dot"))


def test_graph_that_cannot_be_drawn_writes_dot_and_names_the_cli_option(tmp_path, monkeypatch):
    import nablab.autodiff.graph as graph_module

    monkeypatch.setattr(graph_module.shutil, "which", lambda name: None)
    out = tmp_path / "g.svg"
    r = invoke("graph", "x * x", "--vars", "x", "--at", "3", "--out", str(out), "--engine", "graphviz")
    assert r.exit_code == 1
    assert "Graphviz's dot is not installed (apt-get install graphviz" in r.output
    assert "--engine matplotlib draws without it" in r.output and "--out NAME.dot" in r.output
    assert ".to_dot()" not in r.output and "Traceback" not in r.output
    assert not out.exists() and "grad 6" in (tmp_path / "g.dot").read_text()
    monkeypatch.setattr(graph_module.Graph, "engine", staticmethod(lambda: None))
    r = invoke("graph", "x * x", "--vars", "x", "--at", "3", "--out", str(tmp_path / "h.png"))
    assert r.exit_code == 1 and "neither Graphviz's dot nor matplotlib is installed" in r.output
    assert (tmp_path / "h.dot").is_file() and not (tmp_path / "h.png").exists()
    r = invoke("graph", "x", "--vars", "x", "--at", "1", "--out", str(tmp_path / "i.svg"), "--engine", "gv")
    assert r.exit_code == 2 and "--engine 'gv': choose one of auto, graphviz, matplotlib" in r.output


def test_jacobian_names_nan_in_words_and_leaks_no_warning():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = invoke("jacobian", "log(x)", "--vars", "x", "--at", "-1")
    assert r.exit_code == 0, r.output
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert "note: f1 = log(x) is NaN at x = -1: log() at column 1 gives NaN for -1" in r.output
    assert "note: d f1 / d x is NaN by forward difference, central difference" in r.output
    assert "RuntimeWarning" not in r.output and ".py:" not in r.output


def test_graph_names_nan_in_words(tmp_path):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = invoke("graph", "log(x)", "--vars", "x", "--at", "-1", "--out", str(tmp_path / "g.dot"))
    assert r.exit_code == 0, r.output
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert "note: node 1 (log): its value is NaN" in r.output
    assert "log() at column 1 gives NaN for -1" in r.output


def test_graph_out_that_cannot_be_a_file_is_refused_before_anything(tmp_path):
    folder = tmp_path / "figs"
    folder.mkdir()
    r = invoke("graph", "x * x", "--vars", "x", "--at", "3", "--out", str(folder))
    assert r.exit_code == 2 and f"--out {folder} is a folder; give a file name such as" in r.output
    (tmp_path / "notes.txt").write_text("mine")
    r = invoke("graph", "x * x", "--vars", "x", "--at", "3", "--out", str(tmp_path / "notes.txt" / "g.dot"))
    assert r.exit_code == 2 and f"{tmp_path / 'notes.txt'} is a file, not a folder" in r.output
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figs", "notes.txt"]
    assert "Traceback" not in r.output


def test_reproduce_out_that_cannot_be_written_is_a_clean_error(tmp_path, fake_registry):
    (tmp_path / "notes.txt").write_text("mine")
    r = invoke("reproduce", "--out", str(tmp_path / "notes.txt" / "report"), "--only", "data.one-hot")
    assert r.exit_code == 2 and f"{tmp_path / 'notes.txt'} is a file, not a folder" in r.output
    r = invoke("reproduce", "--out", str(tmp_path / "notes.txt"), "--only", "data.one-hot")
    assert r.exit_code == 2 and "exists and is not a folder" in r.output
    r = invoke("reproduce", "--out", "/proc/nablab-report", "--only", "data.one-hot")
    assert r.exit_code == 1 and "error: cannot write the report to /proc/nablab-report:" in r.output
    assert "Traceback" not in r.output
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_lab_run_refuses_a_folder_it_did_not_make(tmp_path, fake_registry):
    mine = tmp_path / "mine"
    (mine / ".sweeps").mkdir(parents=True)
    (mine / "result.json").write_text("my own results")
    r = invoke("lab", "run", "data.one-hot", "--out", str(mine))
    assert r.exit_code == 2 and "was not made by nablab lab run" in r.output
    assert (mine / "result.json").read_text() == "my own results" and (mine / ".sweeps").is_dir()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert invoke("lab", "run", "data.one-hot", "--out", str(empty)).exit_code == 0
    (empty / "plot-notes.txt").write_text("kept")       # its own folder: a rerun may write there
    r = invoke("lab", "run", "data.one-hot", "--param", "steps=5", "--out", str(empty))
    assert r.exit_code == 0, r.output
    assert json.loads((empty / "result.json").read_text())["computed"]["steps"] == 5
    assert (empty / "plot-notes.txt").read_text() == "kept"


def test_lab_run_accepts_its_own_folder_from_before_the_marker(tmp_path, fake_registry):
    old = tmp_path / "runs" / "data.one-hot"
    old.mkdir(parents=True)
    (old / "result.json").write_text(json.dumps({"id": "data.one-hot", "command": "nablab lab run data.one-hot"}))
    r = invoke("lab", "run", "data.one-hot", "--out", str(old))
    assert r.exit_code == 0, r.output


def test_arch_refuses_an_absurd_size_without_a_traceback():
    r = invoke("arch", "input 3x32x32, conv3-" + "9" * 400)
    assert r.exit_code == 2
    assert "layer 2" in r.output and "column 22" in r.output and "is too large" in r.output
    assert "Traceback" not in r.output and "OverflowError" not in r.output


def test_jacobian_time_is_linear_in_the_number_of_outputs():
    # Four times the outputs must cost about four times as much (a quadratic method: sixteen).
    import time

    from nablab.cli import jacobians
    from nablab.expr import parse

    def seconds(m):
        expression = parse(";".join(f"x*{k + 1}+y" for k in range(m)), ["x", "y"])
        best = math.inf
        for _ in range(3):
            start = time.perf_counter()
            j = jacobians(expression, np.array([0.5, 0.25]), 1e-3)
            best = min(best, time.perf_counter() - start)
        np.testing.assert_allclose(j["reverse_mode"][:, 0], np.arange(1, m + 1))
        np.testing.assert_allclose(j["reverse_mode"], j["forward_mode"], rtol=1e-12)
        return best

    small, large = seconds(50), seconds(200)
    assert large / small < 8, f"{small:.3f} s for 50 outputs, {large:.3f} s for 200"


def test_grade_template_claims_take_patterns_and_suggest_ids():
    r = invoke("grade", "--template", "--claims", "cnn.conv-*")
    assert r.exit_code == 0, r.output
    assert '["cnn.conv-output-shape"]' in r.output and "cnn.filter-output" not in r.output
    r = invoke("grade", "--template", "--claims", "cnn.conv-output-shpae")
    assert r.exit_code == 2
    assert "error: --claims: unknown claim id 'cnn.conv-output-shpae'; did you mean 'cnn.conv-output-shape'?" \
        in r.output
    r = invoke("grade", "--claims", "cnn.*")
    assert r.exit_code == 2 and "use it with --template" in r.output


def test_lab_show_and_run_suggest_the_nearest_id():
    for args in (["lab", "show", "data.one-hto"], ["lab", "run", "data.one-hto"]):
        r = invoke(*args)
        assert r.exit_code == 2
        assert "unknown claim id 'data.one-hto'; did you mean 'data.one-hot'?" in r.output


def test_arch_without_an_input_shape_names_the_option_not_the_parameter():
    r = invoke("arch", "conv3-64, fc-10")
    assert r.exit_code == 2
    assert "error: no input shape: start the spec with 'input CxHxW' or pass --input CxHxW" in r.output
    assert "input_shape" not in r.output
    from nablab.arch import summary   # Python callers keep the parameter's name
    with pytest.raises(ValueError, match=r"or pass input_shape=$"):
        summary("conv3-64, fc-10")
    r = invoke("arch", "conv3-64, fc-10", "--input", "3x8x8", "--csv")
    assert r.exit_code == 0 and r.output.splitlines()[-1].startswith("2,fc-10,fc,10,")


def test_arch_names_a_bad_input_option():
    r = invoke("arch", "conv3-64, fc-10", "--input", "3xx")
    assert r.exit_code == 2
    assert r.output.strip() == "error: --input '3xx': cannot read the shape: expected positive sizes such as 3x112x112"
    r = invoke("arch", "conv3-64, fc-10", "--json", "--csv")
    assert r.exit_code == 2 and "choose one of --json and --csv" in r.output
