"""The linop.conv1d-gd claim runs in the lab."""

from nablab.lab.registry import Context, run


def test_conv1d_gd_claim(tmp_path):
    r = run("linop.conv1d-gd", Context(out_dir=tmp_path, quick=True, seed=0))
    assert r.status == "reproduced", r.details
    c = r.computed
    assert c["relative_difference"] < 1e-12
    assert c["operator_loop_peak_bytes"] < c["dense_matrix_bytes"] / 100
    assert c["objective_start_end"][1] < c["objective_start_end"][0]
    assert (tmp_path / r.figures[0]).is_file()
