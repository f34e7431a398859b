"""The experiment registry, the run context, running a claim, and the claims catalogue."""

import doctest
import json
import re
from pathlib import Path

import numpy as np
import pytest

import nablab.lab.claims
import nablab.lab.grading
import nablab.lab.sheets
import nablab.lab.slots
import nablab.lab.registry
import nablab.lab.report
from nablab.lab import registry
from nablab.lab.claims import CLAIMS, CLAIMS_BY_ID, UnknownClaimError
from nablab.lab.registry import Context, compute, parse_params, resolve_params, to_jsonable


def test_catalogue_matches_the_shared_claims_table():
    """Every id of CLAIMS.md is in the catalogue once, with its seed."""
    path = Path(__file__).resolve().parents[3] / "shared" / "CLAIMS.md"
    if not path.exists():
        pytest.skip(f"{path} is not beside the repository")
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+?) \|", path.read_text(), flags=re.M)
    assert {i: s for i, s in rows} == {c.id: c.seed for c in CLAIMS}


def test_catalogue_has_34_unique_claims():
    assert len(CLAIMS) == 34 == len(CLAIMS_BY_ID)
    assert all(c.statement.endswith(".") for c in CLAIMS)


def test_compute_rejects_unknown_ids_and_duplicates(monkeypatch):
    monkeypatch.setattr(registry, "_COMPUTE", {})
    with pytest.raises(UnknownClaimError, match="'no.such'"):
        compute("no.such")

    @compute("data.one-hot")
    def first(run):
        return None

    def second(run):
        return None

    with pytest.raises(ValueError, match="already has a compute function"):
        compute("data.one-hot")(second)


def _computed(fn, tmp_path, fake_experiments, params=None):
    fake_experiments({"data.one-hot": fn}, params=params)
    ctx = Context(out_dir=tmp_path, claim_id="data.one-hot")
    return registry.compute_claim("data.one-hot", ctx)


@pytest.mark.parametrize("case, message", [
    ("not json", "the result['f']: object is not JSON-able"),
    ("raises", "ZeroDivisionError"),
])
def test_failures_become_errors_with_their_traceback(tmp_path, fake_experiments, fake_result, case, message):
    fn = (lambda run: fake_result(f=object())) if case == "not json" else (lambda run: 1 / 0)
    comp = _computed(fn, tmp_path, fake_experiments)
    assert comp.error is not None and message in comp.error
    assert "Traceback" in comp.traceback


def test_a_result_needs_a_field_per_slot(tmp_path, fake_result):
    ctx = Context(out_dir=tmp_path)
    real = registry.registered()["data.one-hot"]
    try:
        registry._COMPUTE["data.one-hot"] = lambda run: fake_result(vocabulary_size=5)
        comp = registry.compute_claim("data.one-hot", ctx)
    finally:
        registry._COMPUTE["data.one-hot"] = real
    assert "no field for slot(s) one_hot, repeats_share_a_row" in comp.error


def test_params_are_resolved_and_typed(tmp_path, fake_experiments):
    fake_experiments({"data.one-hot": lambda run: None},
                     params={"steps": 100, "lr": 0.1, "plot": True, "name": "sgd", "sizes": [1, 2]})
    got = resolve_params("data.one-hot", True, parse_params(["steps=20", "lr=1", "plot=false",
                                                             "name=adam", "sizes=3,4"]))
    assert got == {"steps": 20, "lr": 1.0, "plot": False, "name": "adam", "sizes": [3, 4]}
    assert isinstance(got["lr"], float)
    assert resolve_params("data.one-hot", True)["steps"] == 100
    with pytest.raises(registry.ParamError, match=r"plot=20: plot expects true or false \(its default is True\)"):
        resolve_params("data.one-hot", True, {"plot": 20})
    with pytest.raises(registry.ParamError, match=r"steps=adam: steps expects an integer"):
        resolve_params("data.one-hot", True, {"steps": "adam"})
    with pytest.raises(registry.ParamError, match=r"has no parameter 'step'; it accepts: steps"):
        resolve_params("data.one-hot", True, {"step": 1})


def test_quick_and_full_values_come_from_the_catalogue():
    claim = CLAIMS_BY_ID["theory.wide-minima"]
    quick, full = resolve_params(claim.id, True), resolve_params(claim.id, False)
    assert quick == {n: p.quick for n, p in claim.params.items()}
    assert full == {n: p.full for n, p in claim.params.items()}
    assert quick != full


def test_parse_params_rejects_malformed_items():
    with pytest.raises(ValueError, match="'steps'"):
        parse_params(["steps"])
    with pytest.raises(ValueError, match="'1x=2'"):
        parse_params(["1x=2"])


def test_rng_is_per_claim_and_reproducible(tmp_path):
    a = Context(out_dir=tmp_path, seed=0, claim_id="data.one-hot").rng().random(3)
    b = Context(out_dir=tmp_path, seed=0, claim_id="data.one-hot").rng().random(3)
    c = Context(out_dir=tmp_path, seed=0, claim_id="autodiff.graph").rng().random(3)
    d = Context(out_dir=tmp_path, seed=1, claim_id="data.one-hot").rng().random(3)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and not np.allclose(a, d)


def test_savefig_writes_png_and_refuses_paths(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ctx = Context(out_dir=tmp_path, claim_id="autodiff.graph")
    fig = plt.figure()
    name = ctx.savefig(fig, "curve.png")
    assert name == "autodiff.graph--curve.png"
    assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ctx.figures == [name]
    assert not plt.fignum_exists(fig.number)  # closed
    with pytest.raises(ValueError, match="'../evil'"):
        ctx.savefig(plt.figure(), "../evil")


def test_to_jsonable_output_is_valid_json():
    data = to_jsonable({"a": np.array([[1.5, np.inf]]), "b": (np.int64(2), np.bool_(True)),
                        1: None})
    assert data == {"a": [[1.5, "inf"]], "b": [2, True], "1": None}
    json.dumps(data, allow_nan=False)


def test_load_errors_do_not_hide_other_experiments(monkeypatch, tmp_path):
    import sys

    pkg = tmp_path / "fakeexp"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "ok.py").write_text(
        "from nablab.lab.registry import compute\n"
        "@compute('data.one-hot')\n"
        "def one_hot(run):\n    return None\n")
    (pkg / "bad.py").write_text("raise ImportError('missing dependency xyz')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import nablab.lab.experiments as real

    monkeypatch.setattr(real, "__path__", [str(pkg)])
    monkeypatch.setattr(registry, "_COMPUTE", {})
    monkeypatch.setattr(registry, "_FIGURE", {})
    monkeypatch.setattr(registry, "_LOAD_ERRORS", {})
    monkeypatch.setattr(registry, "_loaded", False)
    fns = registry.registered()
    assert list(fns) == ["data.one-hot"]
    errors = registry.load_errors()
    assert list(errors) == ["nablab.lab.experiments.bad"]
    assert "missing dependency xyz" in errors["nablab.lab.experiments.bad"]
    for name in ("nablab.lab.experiments.ok", "nablab.lab.experiments.bad"):
        sys.modules.pop(name, None)


def test_registered_experiments_use_known_ids():
    for claim_id in registry.registered():
        assert claim_id in CLAIMS_BY_ID


@pytest.mark.parametrize("module", [nablab.lab.claims, nablab.lab.registry, nablab.lab.report,
                                    nablab.lab.slots, nablab.lab.sheets, nablab.lab.grading],
                         ids=lambda m: m.__name__)
def test_doctests(module):
    assert doctest.testmod(module).failed == 0


def test_a_failed_self_check_is_an_error_not_a_verdict(tmp_path, fake_experiments, fake_result):
    from nablab.lab.report import run_claim

    def broken(run):
        run.check(1 + 1 == 3, "arithmetic is off")
        return fake_result()

    fake_experiments({"autodiff.graph": broken})
    record, _ = run_claim("autodiff.graph", tmp_path, True, 0)
    assert record["status"] == "error"
    assert "SelfCheckError: arithmetic is off" in record["summary"]


def test_every_claim_has_an_experiment_with_a_field_per_slot():
    import inspect

    fns = registry.registered()
    assert set(fns) == set(CLAIMS_BY_ID)
    for claim_id, fn in fns.items():
        assert inspect.signature(fn).parameters, claim_id
