"""The report writer: files, fields, error handling and the atomic swap."""

import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from nablab.lab import report  # noqa: E402
from nablab.lab.claims import CLAIMS, UnknownClaimError  # noqa: E402
from nablab.lab.registry import Context  # noqa: E402


def good(run: Context, fake_result):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    run.savefig(fig, "line", alt="a falling line")
    import numpy as np

    return fake_result("Computed 3.5 <b>bold</b>.", value=np.float64(3.5), vec=np.arange(3), bad=float("nan"))


def broken(run: Context):
    raise RuntimeError("boom in the experiment")


@pytest.fixture
def fake_registry(fake_experiments, fake_result):
    fns = {"autodiff.graph": lambda run: good(run, fake_result), "data.one-hot": broken}
    fake_experiments(fns)
    return fns


def read_claims(out: Path) -> dict:
    return {c["id"]: c for c in json.loads((out / "claims.json").read_text())}


def test_writes_html_and_json_with_all_fields(tmp_path, fake_registry):
    out = tmp_path / "report"
    records = report.reproduce(out, quick=True)
    assert (out / "index.html").is_file()
    claims = read_claims(out)
    assert list(claims) == [c.id for c in CLAIMS]  # every claim, catalogue order
    assert len(records) == len(CLAIMS)
    g = claims["autodiff.graph"]
    for field in ("id", "seed", "status", "computed", "seed_says", "figures", "summary", "seconds"):
        assert field in g
    assert g["status"] == "reproduced"  # no answer slots: nothing to grade
    assert g["seed"] == "003 Q5"
    assert g["computed"] == {"value": 3.5, "vec": [0, 1, 2], "bad": "nan"}
    assert g["seed_says"] is None
    assert g["figures"] == ["autodiff.graph--line.png"]
    assert (out / g["figures"][0]).is_file()
    assert g["seconds"] >= 0
    html = (out / "index.html").read_text()
    assert '<img src="autodiff.graph--line.png" alt="a falling line"' in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html  # summaries are escaped, not injected
    assert 'id="autodiff.graph"' in html and 'href="#autodiff.graph"' in html
    assert "http://" not in html and "https://" not in html  # opens offline
    # one inline script (filter, search, zoom); nothing loaded from elsewhere
    assert html.count("<script") == 1 and "<script src" not in html
    # no temporary or backup folders left beside the report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_error_in_an_experiment_is_reported_not_fatal(tmp_path, fake_registry):
    out = tmp_path / "r"
    report.reproduce(out)
    c = read_claims(out)["data.one-hot"]
    assert c["status"] == "error"
    assert "boom in the experiment" in c["summary"]
    assert read_claims(out)["autodiff.graph"]["status"] == "reproduced"
    html = (out / "index.html").read_text()
    assert "RuntimeError: boom in the experiment" in html  # the traceback is shown


def test_not_implemented_claims_are_listed(tmp_path, fake_registry):
    out = tmp_path / "r"
    report.reproduce(out)
    claims = read_claims(out)
    missing = [cid for cid, c in claims.items() if c["status"] == "not-implemented"]
    assert len(missing) == len(CLAIMS) - 2
    assert "theory.gd-rate" in missing
    assert "not-implemented: 32" in (out / "index.html").read_text()


def test_only_runs_a_subset(tmp_path, fake_registry):
    out = tmp_path / "r"
    records = report.reproduce(out, only=["data.one-hot", "autodiff.graph"])
    assert [r["id"] for r in records] == ["autodiff.graph", "data.one-hot"]
    assert list(read_claims(out)) == ["autodiff.graph", "data.one-hot"]


def test_only_with_unknown_id_names_it_and_says_where_the_ids_are(tmp_path, fake_registry):
    with pytest.raises(UnknownClaimError) as info:
        report.reproduce(tmp_path / "r", only=["autodiff.graph", "no.such-claim"])
    msg = str(info.value)
    assert msg == "unknown claim id 'no.such-claim'; `nablab lab list` lists the 34 claims"
    assert not (tmp_path / "r").exists()


def test_failure_while_writing_keeps_the_previous_report(tmp_path, fake_registry, monkeypatch):
    out = tmp_path / "r"
    report.reproduce(out, only=["autodiff.graph"])
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def fail(*args, **kwargs):
        raise OSError("disk full while writing")

    monkeypatch.setattr(report, "_render", fail)
    with pytest.raises(OSError, match="disk full"):
        report.reproduce(out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # tmp folder removed


def test_failure_during_swap_restores_the_previous_report(tmp_path, fake_registry, monkeypatch):
    out = tmp_path / "r"
    report.reproduce(out, only=["autodiff.graph"])
    before = (out / "claims.json").read_text()
    real_rename = os.rename

    def rename(src, dst):
        if ".tmp-" in str(src):
            raise OSError("rename failed")
        return real_rename(src, dst)

    monkeypatch.setattr(report.os, "rename", rename)
    with pytest.raises(OSError, match="rename failed"):
        report.reproduce(out)
    assert (out / "claims.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_rerun_replaces_the_report(tmp_path, fake_registry):
    out = tmp_path / "r"
    report.reproduce(out, only=["autodiff.graph"])
    report.reproduce(out, only=["data.one-hot"])
    assert list(read_claims(out)) == ["data.one-hot"]
    assert not (out / "autodiff.graph--line.png").exists()


def test_refuses_to_replace_a_folder_that_is_not_a_report(tmp_path, fake_registry):
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.tex").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a nablab report"):
        report.reproduce(precious)
    assert (precious / "thesis.tex").read_text() == "keep me"


def test_progress_callback_sees_each_claim(tmp_path, fake_registry):
    seen = []
    report.reproduce(tmp_path / "r", only=["autodiff.graph", "theory.gd-rate"],
                     progress=lambda r: seen.append((r["id"], r["status"])))
    assert seen == [("theory.gd-rate", "not-implemented"), ("autodiff.graph", "reproduced")]


def test_run_metadata_records_versions_and_seed(tmp_path, fake_registry):
    out = tmp_path / "r"
    report.reproduce(out, only=["autodiff.graph"], seed=7, quick=True)
    meta = json.loads((out / "run.json").read_text())
    assert meta["seed"] == 7 and meta["quick"] is True
    assert "numpy" in meta["versions"] and "python" in meta["versions"]
    assert meta["counts"] == {"reproduced": 1}


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda kids: st.lists(kids, max_size=6) | st.dictionaries(st.text(max_size=10), kids,
                                                                max_size=6),
    max_leaves=40)


@settings(max_examples=100, deadline=None)
@given(_JSON)
def test_pretty_json_round_trips_and_breaks_long_containers(value):
    text = report._pretty(value, width=60)
    assert json.loads(text) == value
    flat = json.dumps(value)
    if isinstance(value, (list, dict)) and value and len(flat) > 60:
        assert text.count("\n") >= len(value) + 1  # one line per element plus the brackets
    else:
        assert text == flat


# -- progress from inside a claim ------------------------------------------------------


def test_a_claim_reports_progress_through_reproduce(tmp_path, fake_experiments, fake_result):
    def counting(run):
        for k in range(3):
            run.progress(k + 1, 3, f"part {k + 1}")
        return fake_result("Counted.")

    fake_experiments({"data.one-hot": counting, "autodiff.graph": lambda run: fake_result("Quiet.")})
    told = []
    report.reproduce(tmp_path / "r", only=["autodiff.graph", "data.one-hot"],
                     claim_progress=lambda *args: told.append(args))
    assert told == [("data.one-hot", 1, 3, "part 1"), ("data.one-hot", 2, 3, "part 2"),
                    ("data.one-hot", 3, 3, "part 3")]


def test_progress_does_nothing_without_a_listener_and_refuses_bad_counts(tmp_path):
    run = Context(out_dir=tmp_path)
    run.progress(0, 5, "nobody listens")   # no callback: nothing happens
    for done, total in [(6, 5), (-1, 5), (1, 0), (1.5, 3), (True, 3)]:
        with pytest.raises(ValueError, match=rf"progress\(done={done!r}, total={total!r}\)"):
            run.progress(done, total)


def test_run_claim_passes_progress_and_a_sweep_reports_its_tasks(tmp_path, fake_experiments, fake_result):
    from nablab.lab.sweep import square_task, sweep

    def sweeping(run):
        out = sweep(run, "squares", square_task, [{"x": float(i)} for i in range(4)])
        return fake_result("Swept.", total=float(sum(float(r["y"]) for r in out)))

    fake_experiments({"theory.wide-minima": sweeping})
    told = []
    record, _ = report.run_claim("theory.wide-minima", tmp_path, True, 0,
                                 progress=lambda *args: told.append(args))
    assert record["status"] == "reproduced"
    assert told[0] == (0, 4, "sweep squares") and told[-1] == (4, 4, "sweep squares")
    assert [done for done, _, _ in told] == [0, 1, 2, 3, 4]


def test_unknown_claims_suggest_the_nearest_and_patterns_select(tmp_path, fake_registry):
    with pytest.raises(UnknownClaimError) as info:
        report.reproduce(tmp_path / "r", only=["optim.sgd-min-nrom"])
    assert str(info.value) == "unknown claim id 'optim.sgd-min-nrom'; did you mean 'optim.sgd-min-norm'?"
    assert report.select_claims(["arch.rf-*", "data."]) == ["arch.rf-factors", "arch.rf-recursion", "data.one-hot"]
    assert report.select_claims(["theory"]) == [c.id for c in CLAIMS if c.id.startswith("theory.")]
    records = report.reproduce(tmp_path / "r", only=["autodiff.*"])
    assert [r["id"] for r in records] == ["autodiff.graph", "autodiff.jacobian-three-ways"]
