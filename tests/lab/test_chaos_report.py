"""Chaos tests of `nablab reproduce`: killed at named points, --out written to during a run.

Each run is a real `python -m nablab reproduce` process. ``NABLAB_FAULT=POINT`` makes it
SIGKILL itself at that point (see ``registry.fault_point``); ``POINT:stop`` makes it stop
itself there so the test can act at exactly that moment, then continue it. After every
fault nothing the user had may be lost, and the next run must leave a clean folder.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nablab.lab import report
from nablab.lab.registry import Context

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and /proc")

RUN = [sys.executable, "-m", "nablab", "reproduce", "--only", "data.one-hot,autodiff.graph", "--quick",
       "--scheduler", "serial"]
POINTS = ["build-folder-made", "claim-done", "claim-done@2", "report-written", "swap-start",
          "swap-between-renames", "swap-done"]


def _env(fault=None):
    env = {k: v for k, v in os.environ.items() if k != "NABLAB_FAULT"}
    env["COLUMNS"] = "200"
    if fault:
        env["NABLAB_FAULT"] = fault
    return env


def run(out: Path, fault=None, seed=0) -> subprocess.CompletedProcess:
    return subprocess.run(RUN + ["--seed", str(seed), "--out", str(out)], env=_env(fault),
                          capture_output=True, text=True, timeout=180)


def start(out: Path, fault: str) -> subprocess.Popen:
    """A run that stops itself at ``fault`` (``POINT:stop``); returns once it is stopped."""
    proc = subprocess.Popen(RUN + ["--out", str(out)], env=_env(fault), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            return proc
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"the run never reached {fault}")


def resume(proc: subprocess.Popen) -> tuple[int, str, str]:
    os.kill(proc.pid, signal.SIGCONT)
    stdout, stderr = proc.communicate(timeout=180)
    return proc.returncode, stdout, stderr


def complete(folder: Path) -> bool:
    """A whole report: its marker lists its files and every one of them is there."""
    try:
        listed = json.loads((folder / report.MARKER).read_text())["files"]
        json.loads((folder / "claims.json").read_text())
    except (OSError, ValueError, KeyError):
        return False
    return all((folder / name).is_file() for name in listed)


def files(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != ".nablab-lock"}


@pytest.fixture(scope="module")
def first_report(tmp_path_factory):
    """A report written once (seed 1), copied into each test's folder."""
    out = tmp_path_factory.mktemp("first") / "report"
    r = run(out, seed=1)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture
def workspace(tmp_path, first_report):
    """``report/`` (an earlier report) and the user's own ``notes.txt`` beside it."""
    shutil.copytree(first_report, tmp_path / "report")
    (tmp_path / "notes.txt").write_text("mine")
    return tmp_path


def test_killed_at_random_points_nothing_is_lost_and_the_next_run_cleans_up(workspace):
    out = workspace / "report"
    seed = int(os.environ.get("NABLAB_CHAOS_SEED", "0"))
    points = random.Random(seed).sample(POINTS, len(POINTS))
    for point in points:
        r = run(out, fault=point)
        where = f"(seed {seed}, killed at {point}; order {points})"
        assert r.returncode == -signal.SIGKILL, f"{where}: {r.stderr}"
        olds = sorted(workspace.glob(".report.old-*"))
        if out.exists():
            assert complete(out), where                   # never a half-written report at --out
        else:                                             # only between the two renames
            assert point == "swap-between-renames" and len(olds) == 1 and complete(olds[0]), where
        assert (workspace / "notes.txt").read_text() == "mine", where
    r = run(out)
    assert r.returncode == 0, r.stderr
    assert complete(out) and json.loads((out / "run.json").read_text())["seed"] == 0
    assert sorted(p.name for p in workspace.iterdir()) == ["notes.txt", "report"]


def test_the_run_after_a_kill_between_the_renames_puts_the_report_back(workspace):
    out = workspace / "report"
    before = files(out)
    assert run(out, fault="swap-between-renames").returncode == -signal.SIGKILL
    assert not out.exists() and len(list(workspace.glob(".report.old-*"))) == 1
    # The next run restores it first thing: kill that one right after, and look.
    r = run(out, fault="build-folder-made")
    assert r.returncode == -signal.SIGKILL
    assert f"restored the previous report {out}" in r.stderr
    assert files(out) == before
    assert not list(workspace.glob(".report.old-*"))
    r = run(out)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in workspace.iterdir()) == ["notes.txt", "report"]


@pytest.mark.parametrize("earlier, point", [("empty", "report-written"), ("report", "swap-start")])
def test_a_file_written_into_out_during_the_run_is_kept(workspace, earlier, point):
    out = workspace / "report"
    if earlier == "empty":
        shutil.rmtree(out)
        out.mkdir()
    before = files(out)
    proc = start(out, f"{point}:stop")
    (out / "draft.txt").write_text("written during the run")
    code, _, stderr = resume(proc)
    assert code == 1
    assert "changed during the run: it now holds draft.txt, which nablab did not write" in stderr
    assert f"the new report is in {workspace / 'report.new'}" in stderr
    assert "Traceback" not in stderr
    assert (out / "draft.txt").read_text() == "written during the run"
    assert files(out) == {**before, "draft.txt": b"written during the run"}   # nothing else touched
    assert complete(workspace / "report.new")
    assert sorted(p.name for p in workspace.iterdir()) == ["notes.txt", "report", "report.new"]


def test_a_folder_made_at_out_between_the_renames_is_kept_and_so_are_both_reports(workspace):
    out = workspace / "report"
    before = files(out)
    proc = start(out, "swap-between-renames:stop")
    assert not out.exists()               # the earlier report is moved aside at this point
    out.mkdir()
    (out / "draft.txt").write_text("mine too")
    code, _, stderr = resume(proc)
    assert code == 1 and "changed during the run" in stderr
    assert f"the report that was there is in {workspace / 'report.previous'}" in stderr
    assert files(out) == {"draft.txt": b"mine too"}
    assert files(workspace / "report.previous") == before
    assert complete(workspace / "report.new")
    assert sorted(p.name for p in workspace.iterdir()) == ["notes.txt", "report", "report.new",
                                                             "report.previous"]


def test_a_live_runs_folder_is_not_cleaned_up_by_another_run(workspace):
    out = workspace / "report"
    stopped = start(out, "claim-done:stop")            # alive, holding its lock
    building = list(workspace.glob(".report.tmp-*"))
    assert len(building) == 1
    r = run(out)
    assert r.returncode == 0, r.stderr
    assert building[0].is_dir()                        # the other run's folder is untouched
    code, _, stderr = resume(stopped)
    assert code == 0, stderr
    assert complete(out)
    assert sorted(p.name for p in workspace.iterdir()) == ["notes.txt", "report"]


# -- in this process: what the next run finds beside --out ------------------------------


@pytest.fixture
def quick_registry(fake_experiments, fake_result):
    fake_experiments({"data.one-hot": lambda run: fake_result("fine", x=1)})


def test_folders_that_may_not_be_a_killed_runs_are_left_alone(tmp_path, quick_registry):
    out = tmp_path / "report"
    unlocked = tmp_path / ".report.tmp-legacy1"       # no lock file, but not empty: not provably ours
    unlocked.mkdir()
    (unlocked / "index.html").write_text("?")
    fresh = tmp_path / ".report.tmp-justmade"          # no lock yet, empty, made just now
    fresh.mkdir()
    stale = tmp_path / ".report.tmp-longago"            # empty and over a minute old: a killed run's
    stale.mkdir()
    halfway = tmp_path / ".report.tmp-halfway"          # killed while putting its lock in place
    halfway.mkdir()
    (halfway / ".nablab-lock.x1y2").touch()
    for folder in (stale, halfway):
        os.utime(folder, (time.time() - 120, time.time() - 120))
    report.reproduce(out, only=["data.one-hot"], scheduler="serial")
    assert unlocked.is_dir() and fresh.is_dir() and not stale.exists() and not halfway.exists()


def test_a_symlinked_out_keeps_its_link_and_leaves_nothing_behind(tmp_path, quick_registry):
    target = tmp_path / "reports" / "latest"
    report.reproduce(target, only=["data.one-hot"], scheduler="serial")
    link = tmp_path / "report"
    link.symlink_to(target)
    (target / "claims.json").write_text("[]")           # changed, so we see it replaced
    (target / report.MARKER).write_text(json.dumps({"files": ["claims.json", "index.html", "run.json"]}))
    report.reproduce(link, only=["data.one-hot"], scheduler="serial")
    assert link.is_symlink() and link.resolve() == target
    assert json.loads((link / "claims.json").read_text())[0]["id"] == "data.one-hot"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "reports"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["latest"]


def test_a_report_with_a_file_added_is_refused_at_the_start(tmp_path, quick_registry):
    out = tmp_path / "report"
    report.reproduce(out, only=["data.one-hot"], scheduler="serial")
    (out / "my-notes.md").write_text("keep")
    before = files(out)
    with pytest.raises(FileExistsError, match=r"holds files the report did not write \(my-notes.md\)"):
        report.reproduce(out, only=["data.one-hot"], scheduler="serial")
    assert files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_a_report_from_before_the_marker_listed_its_files_is_still_replaced(tmp_path, quick_registry):
    out = tmp_path / "report"
    out.mkdir()
    for name in ("index.html", "claims.json", "run.json", "data.one-hot--one-hot.png"):
        (out / name).write_text("old")
    (out / report.MARKER).write_text("written by nablab reproduce\n")
    report.reproduce(out, only=["data.one-hot"], scheduler="serial")
    assert complete(out) and not (out / "data.one-hot--one-hot.png").exists()


def test_a_record_holds_its_cross_checks(tmp_path, fake_experiments, fake_result):
    def checked(run: Context):
        run.cross_check("SciPy agreeing", "scipy")
        return fake_result("fine")

    fake_experiments({"data.one-hot": checked})
    report.reproduce(tmp_path / "r", only=["data.one-hot"], scheduler="serial")
    claims = json.loads((tmp_path / "r" / "claims.json").read_text())
    assert claims[0]["cross_checks"] == {"SciPy agreeing": "ran"}


def test_ctrl_c_between_the_renames_puts_the_report_back_at_once(tmp_path, quick_registry, monkeypatch):
    out = tmp_path / "report"
    report.reproduce(out, only=["data.one-hot"], scheduler="serial")
    before = files(out)

    def interrupt(point):
        if point == "swap-between-renames":
            raise KeyboardInterrupt

    monkeypatch.setattr(report, "fault_point", interrupt)
    with pytest.raises(KeyboardInterrupt):
        report.reproduce(out, only=["data.one-hot"], scheduler="serial")
    assert files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
