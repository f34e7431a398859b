"""Without PyTorch every claim runs on nablab alone; its cross-check shows as "not run".

The main test runs ``nablab reproduce --quick`` in a fresh virtual environment that sees
every package of this one except PyTorch (its packages are linked in, torch's are not).
"""

import json
import os
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest
from torch_absent import hide_torch

from nablab.lab import registry
from nablab.lab.registry import Context

NOT_RUN = "not run: PyTorch is not installed"
#: The claims that cross-check against PyTorch when it is there.
TORCH_CLAIMS = {"train.cifar10", "train.diagnostics", "arch.convnet-size", "cnn.conv-output-shape",
                "arch.shape-propagation"}


def _torch_entries() -> set[str]:
    """Top-level names in site-packages that belong to PyTorch (and its CUDA/triton extras)."""
    try:
        files = metadata.distribution("torch").files or []
    except metadata.PackageNotFoundError:
        return set()
    return {f.parts[0] for f in files if f.parts and f.parts[0] != ".."}


def venv_without_torch(dest: Path) -> Path:
    """A venv with this one's packages but not PyTorch; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True)
    python = dest / "bin" / "python"
    site = Path(subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    skip = _torch_entries() | {"torch", "torchgen", "functorch", "__pycache__"}
    for source in {Path(sysconfig.get_paths()[k]) for k in ("purelib", "platlib")}:
        for entry in source.iterdir():
            name = entry.name
            if name in skip or name.startswith(("torch-", "nvidia", "triton")) or (site / name).exists():
                continue
            (site / name).symlink_to(entry)   # .pth files too: the editable nablab install works
    return python


@pytest.mark.skipif(os.name != "posix", reason="builds a POSIX venv with symlinks")
def test_reproduce_quick_without_torch_has_no_errors(tmp_path):
    python = venv_without_torch(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PYTHONNOUSERSITE="1", COLUMNS="200", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    probe = subprocess.run([str(python), "-c", "import torch"], capture_output=True, text=True, env=env)
    assert probe.returncode != 0 and "No module named 'torch'" in probe.stderr
    out = tmp_path / "report"
    r = subprocess.run([str(python), "-m", "nablab", "reproduce", "--quick", "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    claims = {c["id"]: c for c in json.loads((out / "claims.json").read_text())}
    assert not [cid for cid, c in claims.items() if c["status"] == "error"]
    skipped = {cid for cid, c in claims.items() if NOT_RUN in c["cross_checks"].values()}
    assert skipped == TORCH_CLAIMS
    assert not [c for c in claims.values() if "ran" in c["cross_checks"].values()]
    for cid in ("train.cifar10", "train.diagnostics"):
        assert "PyTorch is not installed" in claims[cid]["summary"]
        assert claims[cid]["computed"]                              # nablab's own numbers are there
    html = (out / "index.html").read_text()
    assert html.count(NOT_RUN) >= len(TORCH_CLAIMS)
    assert f"cross-check {NOT_RUN} in {len(TORCH_CLAIMS)} claims" in r.stdout
    assert "Traceback" not in r.stderr


def test_a_cross_check_without_its_library_is_recorded_not_run(tmp_path, monkeypatch):
    hide_torch(monkeypatch)     # import torch now fails
    ctx = Context(out_dir=tmp_path)
    assert ctx.cross_check("PyTorch doing X") is None
    assert ctx.cross_check("SciPy doing Y", "scipy") is not None
    assert ctx.cross_checks == {"PyTorch doing X": NOT_RUN, "SciPy doing Y": "ran"}


def test_an_arch_claim_without_torch_agrees_and_says_the_check_was_not_run(tmp_path, monkeypatch):
    from nablab.lab.report import run_claim

    hide_torch(monkeypatch)
    record, _ = run_claim("arch.convnet-size", tmp_path, True, 0)
    assert record["status"] == "agrees"
    assert record["cross_checks"] == {"PyTorch counting the parameters": NOT_RUN}
    assert record["computed"]["pytorch_params_total"] is None
    assert "the PyTorch cross-check was not run: PyTorch is not installed" in record["summary"]


def test_the_torch_backend_without_torch_says_how_to_install_it(monkeypatch):
    from nablab.train.models import build_model
    from nablab.torch_bridge import to_torch

    hide_torch(monkeypatch)
    with pytest.raises(ModuleNotFoundError, match=r"PyTorch is not installed.*pip install 'nablab\[torch\]'"):
        to_torch(build_model("logistic", (1, 8), 3, seed=0))


def test_a_broken_torch_is_an_error_not_a_skipped_check(tmp_path, monkeypatch):
    """Installed but failing to import: the claim shows as error, never as a quiet skip."""
    import importlib

    real = importlib.import_module

    def failing(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("libtorch_cpu.so: cannot open shared object file")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(registry.importlib, "import_module", failing)
    ctx = Context(out_dir=tmp_path)
    with pytest.raises(ImportError, match="libtorch_cpu"):
        ctx.cross_check("PyTorch doing X")
