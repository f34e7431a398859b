"""Experiments registered under claim ids, and the context they run in.

An experiment is a plain function ``fn(ctx) -> Result`` in a module of
:mod:`nablab.lab.experiments`, registered with :func:`experiment`:

>>> from nablab.lab.registry import Context, Result, experiment
>>> def one_hot_demo(ctx: Context) -> Result:       # doctest: +SKIP
...     words = "This exam is a midterm exam".lower().split()
...     vocab = sorted(set(words))
...     return Result("reproduced", {"vocab": vocab}, "One row per word.")
>>> experiment("data.one-hot")(one_hot_demo)       # doctest: +SKIP
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import inspect
import math
import os
import pkgutil
import re
import signal
import sys
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nablab.lab.claims import CLAIMS_BY_ID, UnknownClaimError

__all__ = ["Result", "Context", "SelfCheckError", "ParamError", "experiment", "registered", "run",
           "compute", "figure", "computations", "resolve_params", "compute_claim", "draw_claim",
           "Computation",
           "load_errors", "params_of", "parse_params", "parse_value", "to_jsonable", "fault_point",
           "STATUSES", "RESULT_STATUSES", "NOT_INSTALLED"]

#: Statuses an experiment may return.
RESULT_STATUSES = ("agrees", "disagrees", "reproduced", "needs-data")
#: All statuses a report can show ("error": the experiment raised or returned
#: something invalid; "not-implemented": no experiment is registered).
STATUSES = RESULT_STATUSES + ("error", "not-implemented")


class SelfCheckError(AssertionError):
    """An experiment's internal consistency check failed (see :meth:`Context.check`)."""


class ParamError(ValueError):
    """A ``--param`` value that does not fit its parameter: the user's error, not the experiment's."""


#: What a cross-check that could not run says, per library (see :meth:`Context.cross_check`).
NOT_INSTALLED = {"torch": "not run: PyTorch is not installed", "scipy": "not run: SciPy is not installed"}


@dataclass
class Result:
    """What an experiment found.

    ``computed`` holds JSON-able numbers, lists and strings (NumPy values are
    converted); ``seed_says`` quotes the seed's answer where it gives one.
    """

    status: str
    computed: dict
    summary: str
    seed_says: str | None = None
    figures: list[str] = field(default_factory=list)
    details: str = ""


@dataclass
class Context:
    """Where and how an experiment runs.

    >>> ctx = Context(out_dir=Path("."), quick=True, seed=0, params={"steps": "20"})
    >>> ctx.param("steps", 100)
    20
    >>> float(ctx.rng().standard_normal()) == float(ctx.rng().standard_normal())
    False
    """

    out_dir: Path
    quick: bool = False
    seed: int = 0
    params: dict = field(default_factory=dict)
    claim_id: str = ""
    figures: list[str] = field(default_factory=list)
    used_params: set = field(default_factory=set)
    #: Cross-checks against another library: name -> "ran" or why not (see :meth:`cross_check`).
    cross_checks: dict = field(default_factory=dict)
    #: The parameter names the experiment reads (see :func:`params_of`); None: not checked.
    accepts: frozenset | None = None
    #: A ``concurrent.futures.Executor`` for :mod:`nablab.lab.sweep`; None runs sweeps in-process.
    executor: Any = field(default=None, repr=False)
    #: Where sweeps save each task's result (so a rerun resumes); None keeps them in memory.
    sweep_dir: Path | None = None
    #: Figure file -> what it shows, in words (its alt text in the report).
    alts: dict = field(default_factory=dict)
    _rng: np.random.Generator | None = field(default=None, repr=False)

    def rng(self) -> np.random.Generator:
        """The experiment's generator, seeded from ``seed`` and the claim id.

        Every call returns the same generator (so draws continue one stream),
        and a claim draws the same numbers whether it runs alone or in a full
        report.
        """
        if self._rng is None:
            self._rng = np.random.default_rng([self.seed, zlib.crc32(self.claim_id.encode())])
        return self._rng

    def param(self, name: str, default: Any) -> Any:
        """``params[name]`` converted to the type of ``default``, or ``default``.

        ``name`` must be a string literal in the experiment's code: that is how
        :func:`params_of` finds the parameters an experiment accepts, and a name
        it did not find is refused here, so the list cannot drift from the code.
        """
        if self.accepts is not None and name not in self.accepts:
            raise LookupError(f"ctx.param({name!r}): not among the parameters found in the "
                              f"experiment's code ({', '.join(sorted(self.accepts)) or 'none'}); "
                              "write the name as a string literal in ctx.param")
        self.used_params.add(name)
        if name not in self.params:
            return default
        return _convert(name, self.params[name], default)

    def cross_check(self, name: str, module: str = "torch"):
        """The module a cross-check needs, or None when it is not installed.

        Without it the check ``name`` is recorded as "not run: PyTorch is not
        installed" (shown in the report and claims.json) and the experiment goes
        on with nablab alone: a verdict never depends on a cross-check. A module
        that is installed but fails to import raises, so a broken install shows
        as an error rather than as a skipped check.
        """
        if importlib.util.find_spec(module) is None:
            self.cross_checks[name] = NOT_INSTALLED.get(module, f"not run: {module} is not installed")
            return None
        self.cross_checks.setdefault(name, "ran")
        return importlib.import_module(module)

    def check(self, condition, message: str) -> None:
        """Assert one of the experiment's own consistency checks.

        A failed check is a fault of the library or the experiment, not a
        verdict on the seed: it raises :class:`SelfCheckError`, and the report
        shows the claim as ``error`` with ``message``, never as ``disagrees``.
        """
        if not bool(condition):
            raise SelfCheckError(message)

    def savefig(self, fig, name: str, alt: str = "") -> str:
        """Save a matplotlib figure as PNG in ``out_dir``, close it, return the file name.

        The file name is prefixed with the claim id so experiments never
        overwrite each other's figures; ``alt`` says in words what it shows.
        """
        stem = name[:-4] if name.lower().endswith(".png") else name
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", stem):
            raise ValueError(f"figure name {name!r} must be a plain file name "
                             "(letters, digits, '_', '-', '.'; no folders)")
        file = f"{self.claim_id}--{stem}.png" if self.claim_id else f"{stem}.png"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        try:
            fig.savefig(self.out_dir / file, dpi=110, bbox_inches="tight")
        finally:
            import matplotlib.pyplot as plt

            plt.close(fig)
        if file not in self.figures:
            self.figures.append(file)
        if alt:
            self.alts[file] = alt
        return file


def _convert(name: str, value: Any, default: Any) -> Any:
    def bad(expected):
        shown = ",".join(map(str, value)) if isinstance(value, list) else value
        return ParamError(f"{name}={shown}: {name} expects {expected} "
                          f"(its default is {default!r})")

    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _BOOLS:
            return _BOOLS[value.lower()]
        raise bad("true or false")
    if isinstance(default, int):
        if isinstance(value, str):
            value = parse_value(value)
        if isinstance(value, bool):
            raise bad("an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad("an integer")
    if isinstance(default, float):
        if isinstance(value, str):
            value = parse_value(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad("a number")
    if isinstance(default, str):
        return value if isinstance(value, str) else str(value)
    if isinstance(default, (list, tuple)):
        items = value if isinstance(value, (list, tuple)) else [value]
        if default:
            items = [_convert(name, v, default[0]) for v in items]
        return type(default)(items)
    return value


_BOOLS = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False}


def parse_value(text: str) -> Any:
    """Parse a ``--param`` value: bool, int, float, comma list, else the string.

    >>> parse_value("3"), parse_value("0.5"), parse_value("true"), parse_value("1,2")
    (3, 0.5, True, [1, 2])
    """
    if "," in text:
        return [parse_value(t.strip()) for t in text.split(",")]
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_params(items: list[str] | None) -> dict:
    """Turn ``["key=value", ...]`` into a dict of parsed values.

    >>> parse_params(["steps=10", "lr=0.1"])
    {'steps': 10, 'lr': 0.1}
    """
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError(f"--param expects key=value with an identifier key, got {item!r}")
        out[key] = parse_value(value.strip())
    return out


def to_jsonable(obj: Any, where: str = "computed") -> Any:
    """Convert NumPy values and containers to plain JSON types.

    Non-finite floats become the strings "nan", "inf" and "-inf" so the JSON
    stays valid. Anything else raises ``TypeError`` naming where it was.

    >>> to_jsonable({"a": np.arange(3), "b": np.float64("nan")})
    {'a': [0, 1, 2], 'b': 'nan'}
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return x if math.isfinite(x) else ("nan" if math.isnan(x) else ("inf" if x > 0 else "-inf"))
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise TypeError(f"{where}: array of dtype {obj.dtype} is not JSON-able")
        return to_jsonable(obj.tolist(), where)
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{where}: {type(obj).__name__} is not JSON-able")


# -- registration ---------------------------------------------------------------

_REGISTRY: dict[str, Callable[[Context], Result]] = {}
_TITLES: dict[str, str] = {}
_LOAD_ERRORS: dict[str, str] = {}
_loaded = False


def experiment(claim_id: str, *, title: str | None = None):
    """Register ``fn(ctx) -> Result`` as the experiment for ``claim_id``.

    The id must be in :mod:`nablab.lab.claims`; a second, different function
    for the same id is an error.
    """
    if claim_id not in CLAIMS_BY_ID:
        raise UnknownClaimError([claim_id])

    def register(fn):
        old = _REGISTRY.get(claim_id)
        # Re-importing the same module (e.g. importlib.reload) is not a duplicate.
        if old is not None and (old.__module__, old.__qualname__) != (fn.__module__,
                                                                      fn.__qualname__):
            raise ValueError(f"claim {claim_id!r} already has an experiment: "
                             f"{old.__module__}.{old.__qualname__}; refusing "
                             f"{fn.__module__}.{fn.__qualname__}")
        _REGISTRY[claim_id] = fn
        if title:
            _TITLES[claim_id] = title
        return fn

    return register


def _load_experiments() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import nablab.lab.experiments as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        name = f"{pkg.__name__}.{info.name}"
        try:
            importlib.import_module(name)
        except Exception:  # one broken module must not hide every other experiment
            _LOAD_ERRORS[name] = traceback.format_exc()


def registered() -> dict[str, Callable]:
    """Import every module of :mod:`nablab.lab.experiments`; return id -> function.

    For a claim written as compute and figure the function is its compute function.
    """
    _load_experiments()
    return {**_REGISTRY, **_COMPUTE}


def load_errors() -> dict[str, str]:
    """Experiment modules that failed to import: module name -> traceback."""
    _load_experiments()
    return dict(_LOAD_ERRORS)


def title(claim_id: str) -> str | None:
    """The title given at registration, if any."""
    return _TITLES.get(claim_id)


def params_of(claim_id: str) -> dict[str, str] | None:
    """The parameters an experiment accepts: name -> its default, as text.

    For a claim written as compute and figure they are its catalogue's parameters
    (full sizes). For the older experiments they are found by reading the code,
    not by running it: every ``*.param("name", default)``
    call in the experiment's function and in the module-level functions it calls.
    None if the function's source cannot be read or it is not a module-level function
    (then parameters are not checked).

    >>> params_of("data.one-hot")
    {'sentence': "'This exam is a midterm exam'"}
    """
    fn = registered().get(claim_id)
    if fn is not None and fn is computations().get(claim_id):  # declared in the catalogue
        return {name: repr(p.full) for name, p in CLAIMS_BY_ID[claim_id].params.items()}
    module = sys.modules.get(getattr(fn, "__module__", ""), None)
    funcs = _module_functions(module) if module is not None else None
    if not funcs or fn.__name__ not in funcs:
        return None
    found: dict[str, str] = {}
    seen, todo = set(), [fn.__name__]
    while todo:
        name = todo.pop()
        if name in seen or name not in funcs:
            continue
        seen.add(name)
        params, calls = funcs[name]
        for key, default in params.items():
            found.setdefault(key, default)
        todo.extend(calls)
    return dict(sorted(found.items()))


@functools.lru_cache(maxsize=None)
def _module_functions(module) -> dict[str, tuple[dict, set]] | None:
    """Per module-level function: the ``.param("literal", default)`` calls and the names it calls."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError, SyntaxError):
        return None
    funcs = {}
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        params, calls = {}, set()
        for sub in ast.walk(node):
            if not isinstance(sub, ast.Call):
                continue
            f, args = sub.func, sub.args
            if (isinstance(f, ast.Attribute) and f.attr == "param" and args
                    and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str)):
                params.setdefault(args[0].value, ast.unparse(args[1]) if len(args) > 1 else "")
            elif isinstance(f, ast.Name):
                calls.add(f.id)
        funcs[node.name] = (params, calls)
    return funcs


_FAULT_COUNTS: dict[str, int] = {}


def fault_point(name: str) -> None:
    """A named point where the tests make this process die, to check that nothing is lost.

    With ``NABLAB_FAULT=NAME`` the process kills itself (SIGKILL) the first time it
    gets here; ``NAME@N`` waits for the N-th time, and ``NAME:stop`` stops it
    (SIGSTOP) instead, so a test can act at that moment and let it continue.
    Without the variable this does nothing.
    """
    spec = os.environ.get("NABLAB_FAULT")
    if not spec:
        return
    target, _, action = spec.partition(":")
    point, _, nth = target.partition("@")
    if point != name:
        return
    _FAULT_COUNTS[name] = _FAULT_COUNTS.get(name, 0) + 1
    if _FAULT_COUNTS[name] == int(nth or 1):
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGSTOP if action == "stop" else signal.SIGKILL)


def run(claim_id: str, ctx: Context) -> Result:
    """Run one experiment; exceptions and invalid results become status "error".

    The traceback goes into ``details`` so the report can show it. A
    :class:`ParamError` (a ``--param`` value of the wrong type) is the user's
    error and is raised instead.
    """
    fns = registered()
    if claim_id not in fns:
        if claim_id not in CLAIMS_BY_ID:
            raise UnknownClaimError([claim_id])
        return Result("not-implemented", {}, "No experiment is registered for this claim yet.")
    if not ctx.claim_id:
        ctx.claim_id = claim_id
    if ctx.accepts is None:
        accepted = params_of(claim_id)
        ctx.accepts = frozenset(accepted) if accepted is not None else None
    try:
        result = fns[claim_id](ctx)
        return _validated(result, ctx)
    except ParamError:
        raise
    except Exception as exc:
        return Result("error", {}, f"The experiment failed: {type(exc).__name__}: {exc}",
                      figures=list(ctx.figures), details=traceback.format_exc())


def _validated(result: Any, ctx: Context) -> Result:
    if not isinstance(result, Result):
        raise TypeError(f"the experiment returned {type(result).__name__}, expected Result")
    if result.status not in RESULT_STATUSES:
        raise ValueError(f"status {result.status!r} is not one of {', '.join(RESULT_STATUSES)}")
    if not isinstance(result.computed, dict):
        raise TypeError(f"computed is a {type(result.computed).__name__}, expected a dict")
    if result.seed_says is not None and not isinstance(result.seed_says, str):
        raise TypeError(f"seed_says is a {type(result.seed_says).__name__}, expected str or None")
    result.computed = to_jsonable(result.computed)
    figures = list(ctx.figures)
    figures += [f for f in result.figures if f not in figures]
    missing = [f for f in figures if not (ctx.out_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(f"figure file(s) {', '.join(missing)} not found in {ctx.out_dir}")
    result.figures = figures
    return result


# -- experiments as compute and figure --------------------------------------------
#
# A claim's experiment is two functions: ``compute(run) -> result``, where the
# result is a dataclass whose fields include one per answer slot of the claim
# (named as the slots) beside the evidence, and ``figure(result, run)``, which
# draws with ``run.savefig(fig, name, alt=...)``.  ``run`` is a Context whose
# ``params`` hold the claim's parameters for this run (quick or full, with the
# user's overrides).  The verdict is not the experiment's business: it comes
# from grading the claim's answer set against the slots (nablab.lab.grading).

_COMPUTE: dict[str, Callable] = {}
_FIGURE: dict[str, Callable] = {}


def _register(table, kind, claim_id, fn):
    if claim_id not in CLAIMS_BY_ID:
        raise UnknownClaimError([claim_id])
    old = table.get(claim_id) or (_REGISTRY.get(claim_id) if kind == "compute" else None)
    if old is not None and (old.__module__, old.__qualname__) != (fn.__module__, fn.__qualname__):
        raise ValueError(f"claim {claim_id!r} already has a {kind} function: {old.__module__}."
                         f"{old.__qualname__}; refusing {fn.__module__}.{fn.__qualname__}")
    table[claim_id] = fn
    return fn


def compute(claim_id: str):
    """Register ``fn(run) -> result`` as the computation of ``claim_id``."""
    return lambda fn: _register(_COMPUTE, "compute", claim_id, fn)


def figure(claim_id: str):
    """Register ``fn(result, run)`` as the figure of ``claim_id``."""
    return lambda fn: _register(_FIGURE, "figure", claim_id, fn)


def computations() -> dict[str, Callable]:
    """Claim id -> compute function, for the claims written as compute and figure."""
    _load_experiments()
    return dict(_COMPUTE)


def resolve_params(claim_id: str, quick: bool, overrides: dict | None = None) -> dict:
    """The claim's parameters for a run: quick or full values, with ``overrides`` converted.

    An override the claim does not declare, or of the wrong type, raises
    :class:`ParamError` naming it and listing the parameters.
    """
    claim = CLAIMS_BY_ID[claim_id]
    values = claim.param_values(quick)
    for name, raw in (overrides or {}).items():
        if name not in claim.params:
            listing = ", ".join(f"{n} (default {p.value(quick)!r})" for n, p in claim.params.items())
            raise ParamError(f"{claim_id} has no parameter {name!r}; "
                             + (f"it accepts: {listing}" if listing else "it takes no parameters"))
        values[name] = _convert(name, raw, claim.params[name].value(quick))
    return values


@dataclass
class Computation:
    """What running a claim's computation gave: its result and what the report needs of it."""

    claim_id: str
    result: Any = None
    truths: dict = field(default_factory=dict)
    evidence: dict = field(default_factory=dict)
    summary: str = ""
    needs_data: str | None = None
    error: str | None = None
    traceback: str = ""
    seconds: float = 0.0


def compute_claim(claim_id: str, ctx: Context) -> Computation:
    """Run a claim's computation (no figure); a failure becomes ``error`` with its traceback.

    ``ctx.params`` holds the user's overrides; they are resolved against the
    claim's declared parameters first (a bad one raises :class:`ParamError`).
    """
    import time

    fn = computations().get(claim_id)
    if fn is None:
        raise KeyError(f"{claim_id} has no compute function")
    claim = CLAIMS_BY_ID[claim_id]
    ctx.claim_id = claim_id
    ctx.params = resolve_params(claim_id, ctx.quick, ctx.params)
    start = time.perf_counter()
    out = Computation(claim_id)
    try:
        result = fn(ctx)
        missing = [s for s in claim.slots if not hasattr(result, s)]
        if missing:
            raise TypeError(f"{type(result).__name__} has no field for slot(s) {', '.join(missing)}")
        out.result = result
        out.truths = {s: getattr(result, s) for s in claim.slots}
        out.evidence = to_jsonable(_fields(result), "the result")
        out.summary = result.summary() if hasattr(result, "summary") else ""
        out.needs_data = getattr(result, "needs_data", None)
    except ParamError:
        raise
    except Exception as exc:
        out.error = f"{type(exc).__name__}: {exc}"
        out.traceback = traceback.format_exc()
    out.seconds = time.perf_counter() - start
    return out


def _fields(result) -> dict:
    import dataclasses

    if dataclasses.is_dataclass(result):
        return {f.name: getattr(result, f.name) for f in dataclasses.fields(result)
                if not f.name.startswith("_") and f.metadata.get("report", True)}
    return dict(vars(result))


def draw_claim(claim_id: str, computation: Computation, ctx: Context) -> str | None:
    """Draw a computed claim's figures into ``ctx.out_dir``; return an error text or None."""
    fn = _FIGURE.get(claim_id)
    if fn is None or computation.result is None:
        return None
    try:
        fn(computation.result, ctx)
    except Exception as exc:
        return f"the figure failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    finally:
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")
    return None
