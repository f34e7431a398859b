"""Every public function and class on the API reference's pages has a docstring with an example
(``>>>``; the doctest runners check that it runs), so the site never shows a name without one.

Public means: the names in a module's ``__all__``, or, for a module without one, the functions
and classes it defines whose names do not start with ``_`` (what mkdocstrings shows).
"""

import importlib
import inspect

import pytest

import nablab.numpy

# The modules the API reference renders with their members (mkdocs.yml, docs/api/*.md).
MODULES = [
    "nablab", "nablab.autodiff.wrappers", "nablab.nn", "nablab.nn.functional", "nablab.nn.init", "nablab.optim",
    "nablab.hyper", "nablab.train", "nablab.arch", "nablab.linop", "nablab.theory", "nablab.data", "nablab.lab",
    "nablab.lab.claims", "nablab.lab.sheets", "nablab.lab.grading", "nablab.lab.registry", "nablab.errors",
    "nablab.checks", "nablab.torch_bridge",
]
# Not held to it, by rule rather than by name:
# - nablab.numpy and nablab.scipy: NumPy's and SciPy's own names and arguments, documented by family
#   (docs/api/numpy.md says so); the test below holds each family to a module docstring instead;
# - nablab.numpy's functions where another package re-exports them (the top level's ``exp``, ``sum``, ...,
#   nablab.nn.functional's ``tanh``): the same functions, under NumPy's names.
ALLOWED: dict[str, str] = {}


def public(module):
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, obj in vars(module).items()
                 if not n.startswith("_") and getattr(obj, "__module__", None) == module.__name__
                 and (inspect.isfunction(obj) or inspect.isclass(obj))]
    for name in names:
        obj = getattr(module, name)
        if getattr(nablab.numpy, name, None) is obj or inspect.ismodule(obj) or not callable(obj):
            continue
        yield name, obj


@pytest.mark.parametrize("module", MODULES)
def test_every_public_function_and_class_has_an_example(module):
    mod = importlib.import_module(module)
    missing = [f"{module}.{name}" for name, obj in public(mod)
               if ">>>" not in (inspect.getdoc(obj) or "") and f"{module}.{name}" not in ALLOWED]
    assert not missing, "no example (>>>) in the docstring of: " + ", ".join(missing)


def test_the_allowlist_holds_only_names_still_without_an_example():
    for qualified in ALLOWED:
        module, name = qualified.rsplit(".", 1)
        assert ">>>" not in (inspect.getdoc(getattr(importlib.import_module(module), name)) or ""), qualified


@pytest.mark.parametrize("family", ["ufuncs", "reductions", "statistics", "shape", "rearrange", "indexing", "grids",
                                    "products", "polynomials", "linalg", "fft", "random"])
def test_every_numpy_family_documents_its_conventions(family):
    module = importlib.import_module(f"nablab.numpy.{family}")  # the module (the attribute np.shape is a function)
    assert len(module.__doc__ or "") > 80, family

