"""The linop.conv1d-gd claim runs in the lab: the matrix-free loop matches the dense one."""

import numpy as np
from claim_records import record_of

from nablab.lab import registry
from nablab.lab.experiments import linop as exp


def test_conv1d_gd_claim(tmp_path):
    record = record_of("linop.conv1d-gd", tmp_path)
    assert registry.registered()["linop.conv1d-gd"] is exp.conv1d_gd
    assert record["status"] == "reproduced"          # answer set 001 gives nothing to grade
    assert {g["outcome"] for g in record["grades"]["001"]} == {"unanswered"}
    assert record["slots"] == {"operator_shape": [994, 1000], "matches_dense": True, "matrix_free": True}
    c = record["computed"]
    assert c["relative_difference"] < 1e-12
    assert c["operator_loop_peak_bytes"] < c["dense_matrix_bytes"] / 100
    assert c["objective_start_end"][1] < c["objective_start_end"][0]
    assert c["objective_max_difference"] < 1e-9 * c["objective_start_end"][0]
    assert c["dot_test"] is True
    assert [row["n"] for row in c["scaling"]] == [500, 1000]
    assert record["figures"] == ["linop.conv1d-gd--gd.png"]


def test_the_dense_matrix_is_the_problems_banded_matrix():
    k = np.array([1.0, -2.0, 3.0])
    np.testing.assert_array_equal(exp.dense_matrix(k, 5), [[1, -2, 3, 0, 0], [0, 1, -2, 3, 0], [0, 0, 1, -2, 3]])


def test_the_loop_is_the_problems_gradient_step():
    """One step by hand: x - alpha (A^T clip(Ax - b, -1, 1) + lam x), 100 times."""
    rng = np.random.default_rng(1)
    A, b, x0 = rng.standard_normal((4, 6)), rng.standard_normal(4), rng.standard_normal(6)
    x = x0
    for _ in range(100):
        x = x - 0.05 * (A.T @ np.clip(A @ x - b, -1, 1) + 0.1 * x)
    np.testing.assert_allclose(exp.gd_loop(A, b, x0, 0.05, 0.1), x, rtol=0, atol=0)
    assert exp.huber(np.array([0.5, -2.0])) == 0.125 + 1.5


def test_other_sizes_and_step(tmp_path):
    record = record_of("linop.conv1d-gd", tmp_path, n=300, r=5, alpha=0.01, sizes=[300])
    assert record["slots"]["operator_shape"] == [296, 300]
    assert record["computed"]["alpha"] == 0.01 and record["status"] == "reproduced"
