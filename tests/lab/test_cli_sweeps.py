"""`--scheduler` and `--workers` of `nablab reproduce` and `nablab lab run`, and Ctrl-C."""

import json

from typer.testing import CliRunner

from nablab import cli
from nablab.lab import report

runner = CliRunner()
SMALL = ["--param", "starts=300", "--param", "sweep_starts=30", "--param", "n_sweep=2",
         "--param", "chunk=100"]


def test_reproduce_prints_its_total_time_and_names_a_bad_scheduler(tmp_path):
    r = runner.invoke(cli.app, ["reproduce", "--out", str(tmp_path / "r"), "--only", "data.one-hot",
                                "--quick", "--scheduler", "serial"])
    assert r.exit_code == 0, r.output
    assert "total time" in r.output.splitlines()[-1]
    assert json.loads((tmp_path / "r" / "run.json").read_text())["scheduler"] == "serial"
    bad = runner.invoke(cli.app, ["reproduce", "--out", str(tmp_path / "b"), "--scheduler", "nope"])
    assert bad.exit_code == 2 and "--scheduler 'nope'" in bad.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_lab_run_sweeps_on_a_local_pool_and_leaves_no_saved_tasks(tmp_path):
    out = tmp_path / "run"
    r = runner.invoke(cli.app, ["lab", "run", "theory.wide-minima", "--quick", *SMALL, "--out", str(out),
                                "--scheduler", "local", "--workers", "2"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "result.json").read_text())["status"] == "agrees"
    assert not (out / ".sweeps").exists()


def test_ctrl_c_says_where_the_finished_tasks_are(tmp_path, monkeypatch):
    def interrupted(claim_id, out_dir, quick, seed, params=None, *, executor=None, sweep_dir=None, progress=None):
        (sweep_dir / claim_id).mkdir(parents=True)
        (sweep_dir / claim_id / "0.npz").write_bytes(b"")
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "run_claim", interrupted)
    r = runner.invoke(cli.app, ["lab", "run", "theory.wide-minima", "--out", str(tmp_path / "x"),
                                "--scheduler", "serial"])
    assert r.exit_code == 130
    assert "finished sweep tasks are saved in" in r.output and "resumes" in r.output
