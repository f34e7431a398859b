"""The package's face: lazy subpackages, an explicit __all__, and the layering of the library."""

import ast
import json
import pathlib
import subprocess
import sys

import pytest

import nablab

ROOT = pathlib.Path(nablab.__file__).parent
#: Library packages and modules: everything but the lab, the command line and ``python -m nablab``.
LIBRARY = sorted(p for p in ROOT.rglob("*.py")
                 if p.relative_to(ROOT).parts[0] not in ("lab", "cli", "__main__.py"))


def fresh(code):
    """Run ``code`` in a new interpreter (outside the repository, so the installed nablab is the one imported)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=pathlib.Path.home())
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_import_nablab_loads_the_engine_only_and_subpackages_come_on_first_use():
    loaded = json.loads(fresh("import sys, json, nablab; print(json.dumps(sorted(sys.modules)))"))
    for heavy in ("nablab.optim", "nablab.nn", "nablab.hyper", "nablab.train", "nablab.arch", "nablab.theory",
                  "nablab.linop", "nablab.data", "nablab.scipy", "nablab.lab", "nablab.cli", "torch",
                  "matplotlib", "typer", "rich", "scipy", "numpy.testing", "numpy.f2py", "numpy.ma", "numpy.random"):
        assert heavy not in loaded, heavy
    out = fresh("import nablab as nb, numpy as np; print(nb.optim.adam(0.1).init(np.zeros(2))['count'], "
                "nb.theory.stability_threshold(4.0), type(nb.nn.Linear(2, 2, rng=0)).__name__)")
    assert out.split() == ["0", "0.5", "Linear"]


def test_subpackages_are_attributes_and_unknown_names_are_refused():
    for name in nablab.SUBMODULES:
        assert name in dir(nablab)
    assert nablab.optim is sys.modules["nablab.optim"]
    with pytest.raises(AttributeError, match="module 'nablab' has no attribute 'optimm'"):
        nablab.optimm  # noqa: B018


def test_numpy_namespace_keeps_numpys_lazy_submodules_reachable():
    import numpy

    import nablab.numpy as nnp

    assert nnp.testing is numpy.testing and nnp.ma is numpy.ma and "f2py" in dir(nnp)
    assert nnp.random.default_rng is numpy.random.default_rng
    with pytest.raises(AttributeError, match="no attribute 'no_such_thing'"):
        nnp.no_such_thing  # noqa: B018


def test_all_is_an_explicit_list_without_helpers():
    from nablab.autodiff import ops

    for module in (nablab, ops):
        assert len(module.__all__) == len(set(module.__all__))
        assert all(hasattr(module, name) for name in module.__all__)
        for helper in ("unbroadcast", "untake", "nondifferentiable", "getitem"):
            assert helper not in module.__all__
    assert not hasattr(nablab, "unbroadcast")
    from nablab.autodiff.dispatch import nondifferentiable  # noqa: F401  (still importable from its module)
    from nablab.autodiff.ops import unbroadcast, untake  # noqa: F401
    from nablab.numpy.shape import untake as untake_home  # noqa: F401
    from nablab.numpy.ufuncs import unbroadcast as unbroadcast_home  # noqa: F401
    tree = ast.parse((ROOT / "__init__.py").read_text())
    assigned = [n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "__all__"]
    assert len(assigned) == 1 and isinstance(assigned[0].value, ast.List)
    assert all(isinstance(e, ast.Constant) for e in assigned[0].value.elts)  # names, not spliced lists


def imports_of(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "use" \
                and getattr(node.func.value, "id", "") == "matplotlib":
            yield "matplotlib.use()"


def test_the_library_never_imports_upward_nor_draws_progress_bars_nor_sets_a_backend():
    assert len(LIBRARY) > 50
    for path in LIBRARY:
        for name in imports_of(path):
            where = path.relative_to(ROOT.parent)
            assert not name.startswith(("nablab.lab", "nablab.cli")), f"{where} imports {name}"
            assert name.split(".")[0] not in ("rich", "typer", "tqdm"), f"{where} imports {name}"
            assert name != "matplotlib.use()", f"{where} calls matplotlib.use"


def test_one_of_each_concept():
    import nablab.arch as arch
    import nablab.autodiff.core as core
    import nablab.errors as errors
    import nablab.train as train
    from nablab import optim

    assert arch.ShapeError is core.ShapeError is nablab.ShapeError is errors.ShapeError
    assert issubclass(train.TrainingDiverged, optim.DivergenceError) and optim.DivergenceError is errors.DivergenceError
    defined = {}
    for path in LIBRARY:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error") and not node.name.startswith("_"):
                defined.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    assert all(where == ["errors.py"] for name, where in defined.items() if name != "BadNpzError"), defined
