"""A report whose run is interrupted keeps its sweeps' results; the rerun resumes from them."""

import json
from pathlib import Path

import pytest

from nablab.lab import report
from nablab.lab.registry import Context
from nablab.lab.sweep import sweep


@pytest.fixture
def tasks(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import sweep_tasks

    return sweep_tasks


def test_an_interrupted_report_resumes_its_sweeps(tmp_path, tasks, fake_experiments, fake_result):
    log = tmp_path / "log"
    log.mkdir()
    interrupt = {"now": True}

    def sweeping(run: Context):
        out = sweep(run, "squares", tasks.logged_task, [{"x": float(i), "log": str(log)} for i in range(4)])
        return fake_result("Squares.", y=[float(r["y"]) for r in out])

    def stopping(run: Context):
        if interrupt["now"]:
            raise KeyboardInterrupt
        return fake_result("Done.")

    fns = {"autodiff.graph": sweeping, "data.one-hot": stopping}
    fake_experiments(fns)
    out = tmp_path / "report"
    with pytest.raises(KeyboardInterrupt):
        report.reproduce(out, only=list(fns), scheduler="serial")
    saved = report.sweep_folder(out)
    assert not out.exists() and len(list(saved.rglob("*.npz"))) == 4
    assert tasks.calls(log) == [0, 1, 2, 3]

    interrupt["now"] = False
    records = report.reproduce(out, only=list(fns), scheduler="serial")
    assert tasks.calls(log) == [0, 1, 2, 3]            # nothing computed twice
    assert records[0]["computed"] == {"y": [0.0, 1.0, 4.0, 9.0]}
    assert json.loads((out / "run.json").read_text())["saved_task_results_found"] == 4
    assert not saved.exists()                          # written: the saved results are gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log", "report"]
