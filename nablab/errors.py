"""Every exception the library raises on purpose, in one place.

Each is also a built-in exception (``ValueError``, ``TypeError``, ...), so code
that catches the built-in keeps working; the modules that raise them re-export
them under their old names (``nablab.arch.ShapeError`` is this ``ShapeError``).

- :class:`ShapeError`: shapes that do not fit (an operation, a layer, a spec);
- :class:`InPlaceError`, :class:`TracedValueError` (and :class:`BatchedValueError`, its vmap case),
  :class:`UnsupportedFunctionError`:
  what the autodiff engine refuses instead of returning a silently wrong derivative;
- :class:`GradcheckError`: a derivative that disagrees with finite differences;
- :class:`DivergenceError` and its :class:`TrainingDiverged`: a run whose loss or
  parameters stopped being finite (or grew past a limit);
- :class:`SpecError`, :class:`ExpressionError`: text that cannot be parsed, with a caret;
  :class:`NoInputShapeError`: an architecture without an input shape;
- :class:`ConfigFileError`: a settings file (``nablab train --config``) that cannot be used;
- :class:`CheckpointError`, :class:`DataNotFoundError`, :class:`UnsafePickleError`:
  files that are missing, damaged or not what they claim.

>>> from nablab.errors import DivergenceError
>>> error = DivergenceError(7, "the loss")
>>> error.step, str(error).split(";")[0]
(7, 'step 7: the loss is no longer finite')
>>> isinstance(error, FloatingPointError)
True
"""

from __future__ import annotations

import pickle

__all__ = [
    "ShapeError", "InPlaceError", "TracedValueError", "BatchedValueError", "UnsupportedFunctionError", "GradcheckError",
    "DivergenceError", "TrainingDiverged", "SpecError", "NoInputShapeError", "ExpressionError", "CheckpointError", "ConfigFileError",
    "DataNotFoundError", "UnsafePickleError",
]


class ShapeError(ValueError):
    """Shapes that do not fit together: an operation's arguments, a layer and its input, a spec.

    >>> import numpy as np
    >>> from nablab.nn import functional as F
    >>> F.linear(np.ones((2, 3)), np.ones((4, 5)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nablab.errors.ShapeError: linear: input has 3 features (shape (2, 3)) but the weight (4, ...
    """


class InPlaceError(RuntimeError, TypeError):
    """An in-place change that would corrupt or escape a derivative (a RuntimeError, as in
    PyTorch, and a TypeError, as assigning into a traced array is in HIPS autograd).

    >>> import numpy as np, nablab as nb
    >>> x = nb.tensor(np.array([1.0, 2.0]), requires_grad=True)
    >>> x[0] = 5.0  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nablab.errors.InPlaceError: in-place item assignment on a tensor that is being ...
    """


class TracedValueError(TypeError):
    """A traced value was about to become a plain NumPy value, losing its derivative.

    >>> import numpy as np, nablab as nb
    >>> nb.grad(lambda x: float(np.asarray(x).sum()))(np.array([1.0]))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nablab.errors.TracedValueError: conversion to a NumPy array on a tensor of shape (1,) and ...
    """


class BatchedValueError(TracedValueError):
    """A value batched by ``vmap`` was asked for as one plain array (``np.asarray``, ``float``, ``bool``).

    Inside ``vmap`` a value is one array per example and has no single NumPy value.
    ``vmap`` catches this error from its own function and runs that function example by
    example instead (with a warning); a batched value that escapes ``vmap`` raises it.

    >>> import numpy as np
    >>> from nablab.autodiff.batching import BatchTensor
    >>> np.asarray(BatchTensor(np.zeros((3, 2)), level=10 ** 9))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nablab.errors.BatchedValueError: conversion to a NumPy array of a value batched by vmap ...
    """


class UnsupportedFunctionError(TypeError, NotImplementedError):
    """A NumPy function nablab cannot differentiate was given a traced value.

    >>> import numpy as onp, nablab as nb, nablab.numpy as np
    >>> nb.grad(lambda x: np.sum(np.unique(x)))(onp.array([1.0, 2.0]))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nablab.errors.UnsupportedFunctionError: numpy.unique was given a traced value (at ...
    """


class GradcheckError(AssertionError):
    """A derivative disagreed with finite differences.

    >>> import nablab as nb
    >>> from nablab.autodiff.core import primitive
    >>> wrong_square = primitive(lambda x: x ** 2, name="wrong_square")
    >>> _ = wrong_square.defvjp(lambda g, ans, x: g * x)
    >>> _ = wrong_square.defjvp(lambda t, ans, x: t * x)
    >>> nb.gradcheck(wrong_square, 1.5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nablab.errors.GradcheckError: Derivative (JVP) check of wrong_square failed (output 0): ...
    """


class DivergenceError(FloatingPointError):
    """A run diverged at ``step`` (0-based): ``what`` (the loss, the gradient, a parameter)
    stopped being finite, or broke a limit the loop was given (``why`` completes
    "the loss is ...", e.g. "more than 10000 times the first step's loss").

    ``value`` is the offending loss when there is one.

    >>> import nablab as nb
    >>> from nablab import optim
    >>> optim.minimize(lambda w: w ** 2, 1.0, optim.sgd(lr=2.0), steps=1000)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nablab.errors.DivergenceError: step 324: the loss is no longer finite; the run diverged ...
    """

    def __init__(self, step, what, why: str = "", value=None, message: str | None = None):
        self.step, self.what, self.why, self.value = step, what, why, value
        if message is None:
            problem = f"{what} is {why or 'no longer finite'}"
            message = f"step {step}: {problem}; the run diverged (a smaller learning rate usually helps)"
        super().__init__(message)

    def __reduce__(self):  # picklable (a sweep's worker sends it home) despite the signature
        return (DivergenceError, (self.step, self.what, self.why, self.value, str(self)))


class TrainingDiverged(DivergenceError):
    """``nablab.train`` stopped: the loss exploded or stopped being finite (or, at an epoch's
    end, a weight or the test loss did). ``step`` counts from 1, as the training log does.

    ``checkpoint`` is the last good checkpoint, which is left as it was (or None).

    ``epoch`` and ``loss`` are where and what it was.

    >>> from nablab.errors import TrainingDiverged
    >>> error = TrainingDiverged(120, 3, float("nan"), None)
    >>> error.step, error.epoch, str(error).split(';')[0]
    (120, 3, 'the loss became nan at step 120 (epoch 3)')
    """

    def __init__(self, step, epoch, loss, checkpoint, what="the loss", why=""):
        self.epoch, self.loss, self.checkpoint = epoch, loss, checkpoint
        kept = (f"the last good checkpoint is {checkpoint}" if checkpoint else
                "no checkpoint was written before it")
        shown = f"{loss:.4g}" if isinstance(loss, float) else loss
        super().__init__(step, what, why, loss if isinstance(loss, float) else None,
                         f"{what} became {shown} at step {step} (epoch {epoch}){why}; training stopped, {kept}. "
                         "A smaller learning rate usually helps.")

    def __reduce__(self):
        return (TrainingDiverged, (self.step, self.epoch, self.loss, self.checkpoint, self.what, self.why))


def _caret_line(text: str, column: int) -> str:
    """``text`` on one line and a caret under ``column`` (1-based), windowed when long."""
    col = max(1, min(column, len(text) + 1))
    # Non-printing characters would break the caret's alignment; show them as '?'.
    line = "".join(c if c.isprintable() else "?" for c in text)
    # Long inputs: show a window around the column instead of 2000 characters.
    start = max(0, col - 60)
    prefix = "..." if start else ""
    return f"  {prefix}{line[start:start + 120]}\n  {' ' * (len(prefix) + col - 1 - start)}^"


class NoInputShapeError(ValueError):
    """Neither an ``input`` layer nor an input shape: the message says how to give one.

    ``from_spec`` tells a spec (which may start with ``input CxHxW``) from a model (which cannot);
    :meth:`remedy` words the fix for a caller whose input shape goes by another name, such as
    the command line's ``--input``.

    >>> from nablab.arch.summary import summary
    >>> summary("conv3-64, fc-10")
    Traceback (most recent call last):
    ...
    nablab.errors.NoInputShapeError: no input shape: start the spec with 'input CxHxW' or pass input_shape=
    >>> try:
    ...     summary("conv3-64, fc-10")
    ... except NoInputShapeError as exc:
    ...     print(exc.remedy("--input CxHxW"))
    no input shape: start the spec with 'input CxHxW' or pass --input CxHxW
    """

    def __init__(self, from_spec: bool = True):
        self.from_spec = from_spec
        super().__init__(self.remedy("input_shape="))

    def remedy(self, how: str) -> str:
        """The message, with ``how`` as the way to pass an input shape."""
        if self.from_spec:
            return f"no input shape: start the spec with 'input CxHxW' or pass {how}"
        return f"no input shape: pass {how} (a model has no input layer)"

    def __reduce__(self):
        return (NoInputShapeError, (self.from_spec,))


class ConfigFileError(ValueError):
    """A settings file that cannot be used: ``path``, ``line`` (or None) and ``key`` (or None) say where.

    >>> from nablab.errors import ConfigFileError
    >>> str(ConfigFileError("run.toml", "lr must be a number, got a string ('fast')", line=3, key="lr"))
    "run.toml, line 3: lr must be a number, got a string ('fast')"
    """

    def __init__(self, path, message: str, line: int | None = None, key: str | None = None):
        self.path, self.message, self.line, self.key = str(path), message, line, key
        super().__init__(f"{self.path}{f', line {line}' if line else ''}: {message}")


class SpecError(ValueError):
    """A spec string that cannot be parsed; the message points at the layer and column.

    >>> from nablab.arch import parse_spec
    >>> parse_spec("input 3x32x32, conv3-, fc-10")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nablab.errors.SpecError: layer 2 'conv3-' (line 1, column 22): expected the number of ...
    """

    def __init__(self, message: str, spec: str = "", offset: int = 0, layer: int = 0, text: str = ""):
        self.message, self.spec, self.offset, self.layer, self.text = message, spec, offset, layer, text
        line_start = spec.rfind("\n", 0, offset) + 1
        line_end = spec.find("\n", offset)
        line_end = len(spec) if line_end < 0 else line_end
        self.line = spec.count("\n", 0, offset) + 1
        self.column = offset - line_start + 1
        where = f"layer {layer} '{text}'" if layer else "spec"
        full = (
            f"{where} (line {self.line}, column {self.column}): {message}\n"
            f"  {spec[line_start:line_end]}\n  {' ' * (self.column - 1)}^"
        )
        super().__init__(full)

    def __reduce__(self):
        return (SpecError, (self.message, self.spec, self.offset, self.layer, self.text))


class ExpressionError(ValueError):
    """A refused or malformed expression; the message shows where, with a caret.

    ``column`` is 1-based within the whole text given to :func:`nablab.expr.parse`.

    >>> from nablab.expr import parse
    >>> parse("x + open(y)", ["x", "y"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nablab.errors.ExpressionError: function 'open' is not allowed; allowed: exp, log, sqrt, ...
    """

    def __init__(self, problem: str, source: str, column: int | None):
        self.problem = problem
        self.source = source
        self.column = column
        message = problem if column is None else f"{problem} (column {column})\n{_caret_line(source, column)}"
        super().__init__(message)

    def __reduce__(self):  # keep it picklable despite the custom signature
        return (ExpressionError, (self.problem, self.source, self.column))


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or not one of ours.

    >>> from nablab.train import load_checkpoint
    >>> load_checkpoint("/nonexistent/checkpoint.npz")
    Traceback (most recent call last):
    ...
    nablab.errors.CheckpointError: no checkpoint at /nonexistent/checkpoint.npz (nothing there)
    """


class DataNotFoundError(FileNotFoundError):
    """Data that is missing, corrupt or not in the expected format.

    A subclass of :class:`FileNotFoundError`, so ``except FileNotFoundError``
    catches it too. The message says what is wrong, at which path, and how
    to supply the files.

    >>> issubclass(DataNotFoundError, FileNotFoundError)
    True
    >>> str(DataNotFoundError("no file at /tmp/x"))
    'no file at /tmp/x'
    """


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for something the restricted unpickler does not build.

    >>> import os, pickle
    >>> from nablab.data.safe_pickle import restricted_loads
    >>> restricted_loads(pickle.dumps(os.getcwd))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nablab.errors.UnsafePickleError: refused to load the global posix.getcwd from <pickle>: ...
    """
