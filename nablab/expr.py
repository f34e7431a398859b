"""A safe parser for small math expressions typed on the command line.

The text is parsed with ``ast.parse(mode="eval")`` and every node is checked
against a whitelist before anything runs; the accepted tree is then compiled
into a flat postfix program that a loop evaluates with nablab functions. User
text is never passed to ``eval``, ``exec`` or ``compile``, and nothing in this
module recurses, so deeply nested input cannot exhaust the Python stack.

Accepted: numbers, the declared variables, unary ``+``/``-``, binary
``+ - * / ** @``, and calls by name to the functions in :data:`FUNCTIONS`.
Several expressions may be separated by ``;``.

>>> e = parse("w1 * w2 + max(w1, w2); exp(w1)", ["w1", "w2"])
>>> e.sources
('w1 * w2 + max(w1, w2)', 'exp(w1)')
>>> import numpy as np
>>> [float(v) for v in e.evaluate({"w1": 1.0, "w2": -1.0}, functions=NUMPY_FUNCTIONS)]
[0.0, 2.718281828459045]
"""

from __future__ import annotations

import ast
import keyword
import operator
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nablab.errors import ExpressionError

__all__ = ["ExpressionError", "Expression", "parse", "FUNCTIONS", "MAX_LENGTH", "NUMPY_FUNCTIONS",
           "nonfinite_cause"]

MAX_LENGTH = 2000

# name -> (min args, max args or None for "any number").
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "exp": (1, 1), "log": (1, 1), "sqrt": (1, 1), "abs": (1, 1),
    "tanh": (1, 1), "sigmoid": (1, 1), "relu": (1, 1), "sin": (1, 1), "cos": (1, 1),
    "sum": (1, 1), "mean": (1, 1), "logsumexp": (1, 1),
    # One argument: a reduction; two or more: elementwise maximum/minimum, folded left.
    "max": (1, None), "min": (1, None),
}

_BINARY = {
    ast.Add: ("+", operator.add), ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul), ast.Div: ("/", operator.truediv),
    ast.Pow: ("**", operator.pow), ast.MatMult: ("@", operator.matmul),
}
_UNARY = {ast.UAdd: ("+", operator.pos), ast.USub: ("-", operator.neg)}

# Readable names for refused syntax, so the message says what was written.
_REFUSED_BINARY = {
    ast.FloorDiv: "//", ast.Mod: "%", ast.LShift: "<<", ast.RShift: ">>",
    ast.BitOr: "|", ast.BitXor: "^", ast.BitAnd: "&",
}
_REFUSED_NODES = {
    ast.Attribute: "attribute access is not allowed", ast.Subscript: "subscripts are not allowed",
    ast.Lambda: "lambdas are not allowed", ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed", ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "generator expressions are not allowed",
    ast.Compare: "comparisons are not allowed", ast.BoolOp: "'and'/'or' are not allowed",
    ast.IfExp: "conditional expressions are not allowed", ast.List: "lists are not allowed",
    ast.Tuple: "tuples are not allowed", ast.Set: "sets are not allowed",
    ast.Dict: "dicts are not allowed", ast.JoinedStr: "f-strings are not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.Starred: "starred arguments are not allowed", ast.Await: "'await' is not allowed",
    ast.Yield: "'yield' is not allowed", ast.YieldFrom: "'yield' is not allowed",
    ast.Slice: "slices are not allowed",
}


@dataclass(frozen=True)
class _Instr:
    kind: str      # "const" | "var" | "unary" | "binary" | "call"
    arg: Any       # the value, name, operator function, or (function name, n args)
    column: int    # 1-based, for evaluation errors
    text: str      # what to call it in an error message


@dataclass(frozen=True)
class Expression:
    """One or more parsed expressions over ``variables``.

    Call it with values in the order of ``variables`` (or use :meth:`evaluate`
    with a mapping); it returns one result per expression.

    >>> e = parse("x * y + 1", ["x", "y"])
    >>> e(2.0, 3.0, functions=NUMPY_FUNCTIONS)
    [7.0]
    """

    text: str
    variables: tuple[str, ...]
    sources: tuple[str, ...]
    programs: tuple[tuple[_Instr, ...], ...]

    def __len__(self) -> int:
        return len(self.programs)

    def __call__(self, *values, functions: Mapping[str, Callable] | None = None) -> list:
        if len(values) != len(self.variables):
            raise ExpressionError(
                f"expected {len(self.variables)} values for {', '.join(self.variables)}, "
                f"got {len(values)}", self.text, None)
        return self.evaluate(dict(zip(self.variables, values)), functions=functions)

    def evaluate(self, values: Mapping[str, Any],
                 functions: Mapping[str, Callable] | None = None) -> list:
        """Evaluate every expression with ``values[name]`` for each variable.

        ``functions`` maps the names in :data:`FUNCTIONS` to callables; by
        default they are nablab's, so Tensors flow through and can be
        differentiated. Any exception raised by an operation becomes an
        :class:`ExpressionError` pointing at that operation.
        """
        missing = [v for v in self.variables if v not in values]
        if missing:
            raise ExpressionError(f"no value given for variable(s) {', '.join(missing)}",
                                  self.text, None)
        table = nablab_functions() if functions is None else functions
        return [self._run(program, values, table) for program in self.programs]

    def evaluate_one(self, index: int, values: Mapping[str, Any],
                     functions: Mapping[str, Callable] | None = None):
        """Evaluate expression ``index`` alone (as :meth:`evaluate` would, for that one)."""
        table = nablab_functions() if functions is None else functions
        return self._run(self.programs[index], values, table)

    def _run(self, program, values, table):
        stack: list = []
        instr = None
        try:
            for instr in program:
                if instr.kind == "const":
                    stack.append(instr.arg)
                elif instr.kind == "var":
                    stack.append(values[instr.arg])
                elif instr.kind == "unary":
                    stack[-1] = instr.arg(stack[-1])
                elif instr.kind == "binary":
                    right = stack.pop()
                    stack[-1] = instr.arg(stack[-1], right)
                else:
                    name, n = instr.arg
                    args = stack[len(stack) - n:]
                    del stack[len(stack) - n:]
                    stack.append(_call(table, name, args))
        except ExpressionError:
            raise
        except Exception as exc:  # any failure of an operation is reported at its column
            raise ExpressionError(f"cannot evaluate {instr.text}: {type(exc).__name__}: {exc}",
                                  self.text, instr.column) from exc
        return stack[0]


def nonfinite_cause(expression: Expression, index: int, values: Mapping[str, Any]) -> str | None:
    """In words, the first operation of expression ``index`` that turns finite numbers into NaN or infinity.

    Evaluated with NumPy (without warnings); None if every step stays finite
    or the input itself is not finite.

    >>> nonfinite_cause(parse("2 * log(x)", ["x"]), 0, {"x": -1.0})
    'log() at column 5 gives NaN for -1'
    >>> nonfinite_cause(parse("x / (y - 1)", ["x", "y"]), 0, {"x": 1.0, "y": 1.0})
    "'/' at column 3 gives infinity for 1 and 0"
    """
    def finite(v):
        return bool(np.all(np.isfinite(np.asarray(v, dtype=float))))

    stack: list = []
    with np.errstate(all="ignore"):
        for instr in expression.programs[index]:
            if instr.kind in ("const", "var"):   # NumPy numbers: 1/0 is inf, as in the real run
                stack.append(np.float64(instr.arg) if instr.kind == "const"
                             else np.asarray(values[instr.arg], dtype=float)[()])
                continue
            n = 1 if instr.kind == "unary" else 2 if instr.kind == "binary" else instr.arg[1]
            args = stack[len(stack) - n:]
            del stack[len(stack) - n:]
            try:
                value = (instr.arg(*args) if instr.kind in ("unary", "binary")
                         else _call(NUMPY_FUNCTIONS, instr.arg[0], args))
            except Exception:  # noqa: BLE001 - the evaluation proper reports failures
                return None
            if not finite(value) and all(finite(a) for a in args):
                return f"{instr.text} at column {instr.column} gives {_kind(value)} for " + \
                    " and ".join(_show(a) for a in args)
            stack.append(value)
    return None


def _kind(value) -> str:
    v = np.asarray(value, dtype=float)
    if np.any(np.isnan(v)):
        return "NaN"
    return "infinity" if np.all(v[~np.isfinite(v)] > 0) else "-infinity"


def _show(value) -> str:
    v = np.asarray(value, dtype=float)
    return f"{float(v):.6g}" if v.size == 1 else np.array2string(v, precision=4)


def _call(table, name, args):
    if name in ("max", "min") and len(args) >= 2:
        pair = table["maximum" if name == "max" else "minimum"]
        out = args[0]
        for a in args[1:]:
            out = pair(out, a)
        return out
    return table[name](*args)


def nablab_functions() -> dict[str, Callable]:
    """The function table backed by nablab (imported lazily)."""
    import nablab as nb

    names = [n for n in FUNCTIONS] + ["maximum", "minimum"]
    return {n: getattr(nb, n) for n in names}


def _np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _np_logsumexp(x):
    x = np.asarray(x, dtype=float)
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m)))


#: A plain-NumPy table: evaluates expressions on floats/arrays without autodiff.
NUMPY_FUNCTIONS: dict[str, Callable] = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "abs": np.abs, "tanh": np.tanh,
    "sigmoid": _np_sigmoid, "relu": lambda x: np.maximum(x, 0.0), "sin": np.sin, "cos": np.cos,
    "sum": np.sum, "mean": np.mean, "logsumexp": _np_logsumexp,
    "max": np.max, "min": np.min, "maximum": np.maximum, "minimum": np.minimum,
}


def check_variables(variables: Sequence[str]) -> tuple[str, ...]:
    """Validate variable names: identifiers, not keywords or function names, no repeats."""
    out = []
    for name in variables:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ExpressionError(f"variable name {name!r} is not a valid identifier", "", None)
        if name in FUNCTIONS:
            raise ExpressionError(f"variable name {name!r} is a function name; choose another",
                                  "", None)
        if name.startswith("__"):
            raise ExpressionError(f"variable name {name!r} may not start with '__'", "", None)
        if name in out:
            raise ExpressionError(f"variable {name!r} is given twice", "", None)
        out.append(name)
    return tuple(out)


def parse(text: str, variables: Sequence[str]) -> Expression:
    """Parse ``text`` (expressions separated by ``;``) over ``variables``.

    Raises :class:`ExpressionError` naming what is not allowed and where.

    >>> parse("exp(w1) + 2 ** w2", ["w1", "w2"]).sources
    ('exp(w1) + 2 ** w2',)
    >>> parse("x.real", ["x"])
    Traceback (most recent call last):
    ...
    nablab.errors.ExpressionError: attribute access (.real) is not allowed (column 2)
      x.real
       ^
    """
    if not isinstance(text, str):
        raise ExpressionError(f"expected a string, got {type(text).__name__}", "", None)
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"the text is {len(text)} characters long; the limit is {MAX_LENGTH}", "", None)
    names = check_variables(variables)
    for i, ch in enumerate(text):
        # One line only: keeps columns exact; tabs are plain whitespace.
        if (ord(ch) < 32 and ch != "\t") or ord(ch) == 127:
            raise ExpressionError(f"control character U+{ord(ch):04X} is not allowed", text, i + 1)

    sources, programs = [], []
    start = 0
    pieces = text.split(";")
    for k, piece in enumerate(pieces):
        stripped = piece.strip()
        offset = start + (len(piece) - len(piece.lstrip()))
        if not stripped:
            # Allow a trailing ';' after at least one expression.
            if not (k == len(pieces) - 1 and k > 0):
                raise ExpressionError("empty expression", text, offset + 1)
        else:
            sources.append(stripped)
            programs.append(_compile(stripped, offset, text, names))
        start += len(piece) + 1
    return Expression(text, names, tuple(sources), tuple(programs))


def _compile(piece: str, offset: int, text: str, names: tuple[str, ...]) -> tuple[_Instr, ...]:
    """Check one expression's tree and flatten it into postfix order (iteratively)."""
    try:
        with warnings.catch_warnings():  # e.g. "1if": the whitelist decides, not a warning
            warnings.simplefilter("ignore")
            tree = ast.parse(piece, mode="eval")
    except SyntaxError as exc:
        col = offset + (exc.offset or 1)
        raise ExpressionError(f"syntax error: {exc.msg}", text, col) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionError(f"cannot parse: {exc}", text, offset + 1) from None

    encoded = piece.encode("utf-8")

    def column(node) -> int:
        # ast columns count UTF-8 bytes; convert to characters in the whole text.
        return offset + len(encoded[:node.col_offset].decode("utf-8", "ignore")) + 1

    def end_column(node) -> int:
        return offset + len(encoded[:node.end_col_offset].decode("utf-8", "ignore")) + 1

    def fail(problem, col):
        raise ExpressionError(problem, text, col)

    program: list[_Instr] = []
    stack: list[tuple[ast.AST, bool]] = [(tree.body, False)]
    while stack:
        node, done = stack.pop()
        if done:
            col = _operator_column(node, end_column, text) if isinstance(node, ast.BinOp) \
                else column(node)
            program.append(_emit(node, col))
            continue
        children = _check(node, names, column, end_column, text, fail)
        stack.append((node, True))
        stack.extend((c, False) for c in reversed(children))
    return tuple(program)


def _check(node, names, column, end_column, text, fail) -> list:
    """Refuse anything off the whitelist; return the children to visit, left to right."""
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            what = ("strings are" if isinstance(v, (str, bytes))
                    else f"the constant {str(v)[:20]} is")
            fail(f"{what} not allowed; only real numbers", column(node))
        try:
            float(v)
        except OverflowError:
            fail("number too large for a float", column(node))
        return []
    if isinstance(node, ast.Name):
        if node.id in names:
            return []
        if node.id in FUNCTIONS:
            fail(f"'{node.id}' is a function; call it as {node.id}(...)", column(node))
        known = ", ".join(names) if names else "(none)"
        fail(f"unknown name '{node.id}'; variables are {known}; functions are "
             f"{', '.join(FUNCTIONS)}", column(node))
    if isinstance(node, ast.UnaryOp):
        if type(node.op) not in _UNARY:
            sym = {ast.Not: "not", ast.Invert: "~"}.get(type(node.op), type(node.op).__name__)
            fail(f"operator '{sym}' is not allowed", column(node))
        return [node.operand]
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            sym = _REFUSED_BINARY.get(type(node.op), type(node.op).__name__)
            fail(f"operator '{sym}' is not allowed; use + - * / ** @",
                 _operator_column(node, end_column, text))
        return [node.left, node.right]
    if isinstance(node, ast.Call):
        func = node.func
        if not isinstance(func, ast.Name):
            if isinstance(func, ast.Attribute):
                fail(f"attribute access (.{func.attr}) is not allowed", _dot(func, end_column, text))
            fail("only calls to named functions are allowed", column(func))
        if func.id not in FUNCTIONS:
            fail(f"function '{func.id}' is not allowed; allowed: {', '.join(FUNCTIONS)}",
                 column(func))
        if node.keywords:
            kw = node.keywords[0]
            label = f"keyword argument '{kw.arg}=' is" if kw.arg else "'**' arguments are"
            fail(f"{label} not allowed", column(kw))
        for a in node.args:
            if isinstance(a, ast.Starred):
                fail("starred arguments are not allowed", column(a))
        lo, hi = FUNCTIONS[func.id]
        n = len(node.args)
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else f"at least {lo}"
            fail(f"{func.id}() takes {want} argument(s), got {n}", column(func))
        return list(node.args)
    if isinstance(node, ast.Attribute):
        fail(f"attribute access (.{node.attr}) is not allowed", _dot(node, end_column, text))
    fail(_REFUSED_NODES.get(type(node), f"{type(node).__name__} is not allowed"), column(node))


def _operator_column(node, end_column, text) -> int:
    """Column of a binary operator: past the left operand's spaces and closing parens."""
    col = end_column(node.left)
    while col <= len(text) and text[col - 1] in " \t)":
        col += 1
    return col


def _dot(node, end_column, text) -> int:
    """Column of the '.' in an attribute access (it may be followed by spaces)."""
    col = end_column(node) - len(node.attr) - 1
    while col > 1 and text[col - 1] != ".":
        col -= 1
    return col


def _emit(node, col: int) -> _Instr:
    if isinstance(node, ast.Constant):
        return _Instr("const", float(node.value), col, repr(node.value))
    if isinstance(node, ast.Name):
        return _Instr("var", node.id, col, f"'{node.id}'")
    if isinstance(node, ast.UnaryOp):
        sym, fn = _UNARY[type(node.op)]
        return _Instr("unary", fn, col, f"unary '{sym}'")
    if isinstance(node, ast.BinOp):
        sym, fn = _BINARY[type(node.op)]
        return _Instr("binary", fn, col, f"'{sym}'")
    return _Instr("call", (node.func.id, len(node.args)), col, f"{node.func.id}()")
