"""A report whose run is interrupted keeps its sweeps' results; the rerun resumes from them."""

import json
from pathlib import Path

import pytest

from nablab.lab import registry, report
from nablab.lab.registry import Context, Result
from nablab.lab.sweep import sweep


@pytest.fixture
def tasks(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import sweep_tasks

    return sweep_tasks


def test_an_interrupted_report_resumes_its_sweeps(tmp_path, tasks, monkeypatch):
    log = tmp_path / "log"
    log.mkdir()
    interrupt = {"now": True}

    def sweeping(ctx: Context) -> Result:
        out = sweep(ctx, "squares", tasks.logged_task, [{"x": float(i), "log": str(log)} for i in range(4)])
        return Result("reproduced", {"y": [float(r["y"]) for r in out]}, "Squares.")

    def stopping(ctx: Context) -> Result:
        if interrupt["now"]:
            raise KeyboardInterrupt
        return Result("reproduced", {}, "Done.")

    fns = {"autodiff.graph": sweeping, "data.one-hot": stopping}
    monkeypatch.setattr(registry, "registered", lambda: dict(fns))
    monkeypatch.setattr(registry, "load_errors", lambda: {})
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
