"""Claims' experiments as compute and figure, and the context they run in.

A claim's experiment is two functions in a module of :mod:`nablab.lab.experiments`:
``compute(run) -> result``, where the result is a dataclass with one field per
answer slot of the claim (named as the slots) beside its evidence and a
``summary()`` that describes the values in words, and ``figure(result, run)``,
which draws with ``run.savefig(fig, name, alt=...)``.  ``run`` is a
:class:`Context`: ``run.params`` holds the claim's parameters for this run
(quick or full, with the user's overrides), ``run.rng()`` its generator,
``run.check`` its self-checks, ``run.progress`` how far a long one has got.  The verdict is not the experiment's business:
it comes from grading the claim's answer sets (:mod:`nablab.lab.grading`).

>>> from dataclasses import dataclass
>>> @dataclass
... class Squares:
...     total: int
...     def summary(self):
...         return f"The squares add up to {self.total}."
>>> def squares(run):                      # registered with @compute("some.claim")
...     return Squares(sum(k * k for k in range(run.params["n"])))
>>> squares(Context(out_dir=Path("."), params={"n": 4})).summary()
'The squares add up to 14.'
"""

from __future__ import annotations

import importlib
import importlib.util
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

__all__ = ["Context", "SelfCheckError", "ParamError", "compute", "figure", "registered",
           "resolve_params", "compute_claim", "draw_claim", "Computation", "load_errors", "params_of",
           "parse_params", "parse_value", "to_jsonable", "fault_point", "STATUSES", "NOT_INSTALLED"]

#: The statuses a claim can have in a report: from grading its answer sets (agrees, disagrees,
#: reproduced), from the data (needs-data), or from a failure (error); not-implemented when no
#: experiment is registered for it.
STATUSES = ("agrees", "disagrees", "reproduced", "needs-data", "error", "not-implemented")


class SelfCheckError(AssertionError):
    """An experiment's internal consistency check failed (see :meth:`Context.check`).

    It is an ``AssertionError``; the report shows the claim as ``error``.

    >>> from nablab.lab.registry import SelfCheckError
    >>> issubclass(SelfCheckError, AssertionError)
    True
    """


class ParamError(ValueError):
    """A ``--param`` value that does not fit its parameter: the user's error, not the experiment's.

    >>> from nablab.lab.registry import resolve_params
    >>> resolve_params("data.one-hot", quick=True, overrides={"sentense": "a b"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nablab.lab.registry.ParamError: data.one-hot has no parameter 'sentense'; it accepts: ...
    """


#: What a cross-check that could not run says, per library (see :meth:`Context.cross_check`).
NOT_INSTALLED = {"torch": "not run: PyTorch is not installed", "scipy": "not run: SciPy is not installed"}


@dataclass
class Context:
    """Where and how an experiment runs.

    >>> ctx = Context(out_dir=Path("."), quick=True, seed=0, params={"steps": 20})
    >>> ctx.params["steps"]
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
    #: Cross-checks against another library: name -> "ran" or why not (see :meth:`cross_check`).
    cross_checks: dict = field(default_factory=dict)
    #: A ``concurrent.futures.Executor`` for :mod:`nablab.lab.sweep`; None runs sweeps in-process.
    executor: Any = field(default=None, repr=False)
    #: Where sweeps save each task's result (so a rerun resumes); None keeps them in memory.
    sweep_dir: Path | None = None
    #: Figure file -> what it shows, in words (its alt text in the report).
    alts: dict = field(default_factory=dict)
    #: ``(done, total, what)`` -> None: set by a runner that shows progress (see :meth:`progress`).
    on_progress: Callable[[int, int, str], None] | None = field(default=None, repr=False)
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

    def progress(self, done: int, total: int, what: str = "") -> None:
        """Say how far a long computation has got: ``done`` of ``total`` parts, now ``what``.

        It does nothing unless the runner asked for progress (``nablab reproduce``
        and ``nablab lab run`` draw it as a bar), so a claim that runs for more
        than a few seconds can call it freely.

        >>> seen = []
        >>> run = Context(out_dir=Path("."), on_progress=lambda *told: seen.append(told))
        >>> run.progress(1, 4, "the MLP in PyTorch")
        >>> seen
        [(1, 4, 'the MLP in PyTorch')]
        >>> run.progress(5, 4)
        Traceback (most recent call last):
        ...
        ValueError: progress(done=5, total=4): done must be an integer from 0 to total
        """
        if isinstance(total, bool) or not isinstance(total, (int, np.integer)) or total < 1:
            raise ValueError(f"progress(done={done!r}, total={total!r}): total must be a positive integer")
        if isinstance(done, bool) or not isinstance(done, (int, np.integer)) or not 0 <= done <= total:
            raise ValueError(f"progress(done={done!r}, total={total!r}): done must be an integer from 0 to total")
        if self.on_progress is not None:
            self.on_progress(int(done), int(total), str(what))

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
        overwrite each other's figures; ``alt`` says in words what it shows
        (``$...$`` holds math, as in the report's other text). The PNG has twice
        the pixels the page shows it at (200 dpi for 100 CSS pixels an inch; the
        report reads the density from the file), so it is sharp on high-density
        screens; a figure wider than 30 inches gets fewer (at most 6,000 pixels a side).
        Figures for the report are best at most 11 inches wide: wider ones are
        shrunk to fit the page. Axes labelled with epochs or steps get whole-number
        ticks, and log axes plain labels (``2.2``, not ``2.2×10⁰``):
        :func:`nablab.train.plots.tidy_axes`.
        """
        from nablab.train.plots import tidy_axes

        stem = name[:-4] if name.lower().endswith(".png") else name
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", stem):
            raise ValueError(f"figure name {name!r} must be a plain file name "
                             "(letters, digits, '_', '-', '.'; no folders)")
        file = f"{self.claim_id}--{stem}.png" if self.claim_id else f"{stem}.png"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        try:
            tidy_axes(fig)
            dpi = min(200, 6000 / max(fig.get_size_inches()))
            fig.savefig(self.out_dir / file, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
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

_COMPUTE: dict[str, Callable] = {}
_FIGURE: dict[str, Callable] = {}
_LOAD_ERRORS: dict[str, str] = {}
_loaded = False


def _register(table, kind, claim_id, fn):
    if claim_id not in CLAIMS_BY_ID:
        raise UnknownClaimError([claim_id])
    old = table.get(claim_id)
    # Re-importing the same module (e.g. importlib.reload) is not a duplicate.
    if old is not None and (old.__module__, old.__qualname__) != (fn.__module__, fn.__qualname__):
        raise ValueError(f"claim {claim_id!r} already has a {kind} function: {old.__module__}."
                         f"{old.__qualname__}; refusing {fn.__module__}.{fn.__qualname__}")
    table[claim_id] = fn
    return fn


def compute(claim_id: str):
    """Register ``fn(run) -> result`` as the computation of ``claim_id`` (a catalogue id).

    Used as a decorator in a module of :mod:`nablab.lab.experiments`; an id that is not in the
    catalogue is refused at once.

    >>> from nablab.lab import compute, registered
    >>> callable(registered()["data.one-hot"])
    True
    >>> compute("data.one-hto")
    Traceback (most recent call last):
    ...
    nablab.lab.claims.UnknownClaimError: unknown claim id 'data.one-hto'; did you mean 'data.one-hot'?
    """
    if claim_id not in CLAIMS_BY_ID:
        raise UnknownClaimError([claim_id])
    return lambda fn: _register(_COMPUTE, "compute", claim_id, fn)


def figure(claim_id: str):
    """Register ``fn(result, run)`` as the figure of ``claim_id`` (a catalogue id).

    Used as a decorator beside :func:`compute`; the function draws into ``run.out_dir``.

    >>> from nablab.lab import figure
    >>> figure("no.such-claim")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nablab.lab.claims.UnknownClaimError: unknown claim id 'no.such-claim'; `nablab lab list` ...
    """
    if claim_id not in CLAIMS_BY_ID:
        raise UnknownClaimError([claim_id])
    return lambda fn: _register(_FIGURE, "figure", claim_id, fn)


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
    """Import every module of :mod:`nablab.lab.experiments`; return claim id -> compute function.

    >>> from nablab.lab import registered
    >>> experiments = registered()
    >>> len(experiments) > 30, "data.one-hot" in experiments
    (True, True)
    """
    _load_experiments()
    return dict(_COMPUTE)


def load_errors() -> dict[str, str]:
    """Experiment modules that failed to import: module name -> traceback.

    >>> from nablab.lab import load_errors
    >>> load_errors()
    {}
    """
    _load_experiments()
    return dict(_LOAD_ERRORS)


def params_of(claim_id: str) -> dict[str, str]:
    """The parameters a claim's experiment accepts: name -> its full-size value, as text.

    >>> params_of("data.one-hot")
    {'sentence': "'This exam is a midterm exam'"}
    """
    return {name: repr(p.full) for name, p in CLAIMS_BY_ID[claim_id].params.items()}


_FAULT_COUNTS: dict[str, int] = {}


def fault_point(name: str) -> None:
    """A named point where the tests make this process die, to check that nothing is lost.

    With ``NABLAB_FAULT=NAME`` the process kills itself (SIGKILL) the first time it
    gets here; ``NAME@N`` waits for the N-th time, and ``NAME:stop`` stops it
    (SIGSTOP) instead, so a test can act at that moment and let it continue.
    Without the variable this does nothing.

    ``name`` names the point.

    >>> from nablab.lab.registry import fault_point
    >>> fault_point("report.before-swap") is None
    True
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


# -- running a claim ----------------------------------------------------------------

def resolve_params(claim_id: str, quick: bool, overrides: dict | None = None) -> dict:
    """The claim's parameters for a run: quick or full values, with ``overrides`` converted.

    An override the claim does not declare, or of the wrong type, raises
    :class:`ParamError` naming it and listing the parameters.

    ``quick`` picks the quick values; ``overrides`` maps names to values (text is converted).

    >>> from nablab.lab.registry import resolve_params
    >>> resolve_params("data.one-hot", quick=True, overrides={"sentence": "a b a"})
    {'sentence': 'a b a'}
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
    """What running a claim's computation gave: its result and what the report needs of it.

    ``truths`` are the answer slots' computed values, ``evidence`` the other values the report shows,
    ``summary`` one sentence; ``needs_data`` says what data is missing, ``error`` and ``traceback``
    what failed; ``seconds`` is the time it took.

    >>> import tempfile, pathlib
    >>> from nablab.lab import Context
    >>> from nablab.lab.registry import compute_claim
    >>> done = compute_claim("data.one-hot", Context(out_dir=pathlib.Path(tempfile.mkdtemp()), quick=True))
    >>> type(done).__name__, sorted(done.truths), done.needs_data
    ('Computation', ['one_hot', 'repeats_share_a_row', 'vocabulary_size'], None)
    """

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

    >>> import tempfile, pathlib
    >>> from nablab.lab import Context
    >>> from nablab.lab.registry import compute_claim
    >>> ctx = Context(out_dir=pathlib.Path(tempfile.mkdtemp()), quick=True, claim_id="data.one-hot")
    >>> done = compute_claim("data.one-hot", ctx)
    >>> done.error, done.truths["vocabulary_size"], done.truths["repeats_share_a_row"]
    (None, 5, True)
    """
    import time

    fn = registered().get(claim_id)
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
    """Draw a computed claim's figures into ``ctx.out_dir``; return an error text or None.

    >>> import tempfile, pathlib
    >>> from nablab.lab import Context
    >>> from nablab.lab.registry import compute_claim, draw_claim
    >>> ctx = Context(out_dir=pathlib.Path(tempfile.mkdtemp()), quick=True, claim_id="data.one-hot")
    >>> print(draw_claim("data.one-hot", compute_claim("data.one-hot", ctx), ctx))
    None
    >>> ctx.figures
    ['data.one-hot--one-hot.png']
    """
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
