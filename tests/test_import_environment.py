"""What ``import nablab`` does to the process's environment: one OpenBLAS setting, only before NumPy loads."""

import os
import subprocess
import sys

import pytest

SHOW = "import os; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"


def _run(code, **env):
    environ = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    environ.update(env)
    done = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_importing_nablab_first_shortens_openblas_idle_spinning():
    assert _run("import nablab; " + SHOW) == "14"


def test_a_value_the_user_chose_is_kept():
    assert _run("import nablab; " + SHOW, OPENBLAS_THREAD_TIMEOUT="20") == "20"


def test_nothing_changes_when_numpy_was_loaded_first():
    # OpenBLAS read its settings when NumPy loaded it: setting the variable then would only mislead
    assert _run("import numpy, nablab; " + SHOW) == "None"


@pytest.mark.parametrize("value", ["14", None])
def test_numpy_works_either_way(value):
    env = {} if value is None else {"OPENBLAS_THREAD_TIMEOUT": value}
    assert _run("import nablab, numpy as np; print(float((np.ones((300, 300)) @ np.ones(300)).sum()))", **env) \
        == "90000.0"
