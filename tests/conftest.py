"""Suite-wide settings."""

import matplotlib

matplotlib.use("Agg")

try:
    import torch
except ImportError:  # torch is a test extra; tests that need it import it themselves
    torch = None

if torch is not None:
    # The tensors in the tests are tiny: torch's thread pool only adds contention, which
    # under pytest-xdist (one process per core) slowed tiny-tensor loops by 100x.
    torch.set_num_threads(1)


# -- fake experiments for the lab's tests ----------------------------------------------

import dataclasses  # noqa: E402

import pytest  # noqa: E402


def make_fake_result(summary: str = "", **values):
    """A result object as an experiment returns it: a dataclass of ``values`` with a summary."""
    cls = dataclasses.make_dataclass("FakeResult", [(k, object) for k in values],
                                     namespace={"summary": lambda self: summary})
    return cls(**values)


@pytest.fixture
def fake_result():
    """The function ``fake_result(summary="...", **values)`` (see make_fake_result)."""
    return make_fake_result


@pytest.fixture
def fake_experiments(monkeypatch):
    """``install({claim_id: compute_fn}, params={name: default})`` registers fake experiments.

    Each claim named gets no answer slots and the given parameters, so a fake
    result needs only its own fields; no other claim has an experiment.
    """
    from nablab.lab import registry, sheets
    from nablab.lab.claims import CLAIMS_BY_ID, Param

    def install(fns, params=None, figures=None):
        for claim_id in fns:
            claim = CLAIMS_BY_ID[claim_id]
            declared = {n: Param(n, v, v) for n, v in (params or {}).items()}
            monkeypatch.setitem(CLAIMS_BY_ID, claim_id,
                                dataclasses.replace(claim, slots={}, params=declared, notes=""))
        monkeypatch.setattr(registry, "_COMPUTE", dict(fns))
        monkeypatch.setattr(registry, "_FIGURE", dict(figures or {}))
        monkeypatch.setattr(registry, "_loaded", True)
        monkeypatch.setattr(registry, "_LOAD_ERRORS", {})
        # The answer sets answer the real claims' slots, which the fakes do not have.
        monkeypatch.setattr(sheets, "answer_sets", lambda: {})

    return install
