"""Parse network specs written in the VGG paper's notation.

A spec is a list of layers separated by commas or newlines (``#`` starts a
comment)::

    input 3x112x112, conv3-64, maxpool2, conv3-128, maxpool2, fc-100, softmax

=====================  ========================================================
``input CxHxW``        input shape; ``NxCxHxW`` adds a batch, ``F`` / ``NxF`` a vector
``convK-C``            K x K convolution, C output channels, stride 1, zero padding
                       ``d (K - 1) // 2`` (``(K - 1) / 2`` for odd K: the size is kept)
``convKxL-C``          a K x L kernel
``convTK-C``           transposed convolution, stride 1, padding 0
``maxpoolK``           max pooling, stride K, padding 0 (``avgpoolK`` likewise)
``fc-N``               fully connected, N outputs (flattens its input)
``relu`` ``leakyrelu`` ``sigmoid`` ``tanh`` ``bn`` ``dropout`` ``flatten`` ``softmax``
``NAME: layer``        names a layer's output
``concat(NAME)``       joins the output of NAME to the current one on channels
``add(NAME)``          adds the output of NAME (residual connection)
``from(NAME)``         continues from the output of NAME (starts a branch)
=====================  ========================================================

Options follow slashes: ``/s2`` stride, ``/p1`` padding (``/psame``,
``/pvalid``), ``/d2`` dilation, ``/g2`` groups, ``/op1`` output padding
(transposed conv), ``/nb`` no bias, ``/ceil`` ceil mode (pooling).  Two-axis
values are written ``/s2x1``.  Example: ``conv4-128/s2/p1``, ``maxpool3/s2/p1``,
``convT4-8/s2/p1/op0``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nablab.errors import SpecError

from .shapes import same_padding

__all__ = ["Layer", "SpecError", "parse_spec", "parse_shape", "MAX_SIZE"]

#: The largest size, channel count, kernel, stride, padding or dilation a spec may give:
#: beyond it a number is a typo, and arithmetic on it only overflows or takes forever.
MAX_SIZE = 2**31 - 1


def _too_large(what: str, digits: str) -> str | None:
    """Why ``digits`` is refused as ``what``, or None if it is small enough."""
    if len(digits) <= len(str(MAX_SIZE)) and int(digits) <= MAX_SIZE:
        return None
    shown = digits if len(digits) <= 20 else f"{digits[:6]}... ({len(digits)} digits)"
    return f"{what} {shown} is too large (at most {MAX_SIZE:,})"

ACTIVATIONS = ("relu", "leakyrelu", "sigmoid", "tanh")
SIMPLE = ACTIVATIONS + ("bn", "dropout", "flatten", "softmax")
REFS = ("concat", "add", "from")
OPTIONS = {
    "conv": ("s", "p", "d", "g", "nb"),
    "convT": ("s", "p", "d", "g", "op", "nb"),
    "maxpool": ("s", "p", "d", "ceil"),
    "avgpool": ("s", "p", "ceil"),
    "fc": ("nb",),
}
FORMS = {
    "input": "input CxHxW (e.g. input 3x112x112)",
    "conv": "convK-C (e.g. conv3-64)",
    "convT": "convTK-C (e.g. convT4-8/s2/p1)",
    "maxpool": "maxpoolK (e.g. maxpool2)",
    "avgpool": "avgpoolK (e.g. avgpool2)",
    "fc": "fc-N (e.g. fc-1024)",
    "concat": "concat(NAME)",
    "add": "add(NAME)",
    "from": "from(NAME)",
}
KNOWN = sorted(set(FORMS) | set(SIMPLE))


@dataclass(frozen=True)
class Layer:
    """One parsed layer.  Axis-wise values are tuples over (height, width).

    ``padding`` holds ``(left, right)`` pairs per axis after defaults and
    ``"same"`` are resolved; ``padding_mode`` keeps what was written
    (``"default"``, ``"explicit"``, ``"same"`` or ``"valid"``).

    >>> from nablab.arch import parse_spec
    >>> layers = parse_spec("input 3x32x32, conv5-16/s2/p2, maxpool2, fc-10")
    >>> conv = layers[1]
    >>> conv.kind, conv.kernel, conv.channels, conv.stride, conv.padding, conv.padding_mode
    ('conv', (5, 5), 16, (2, 2), ((2, 2), (2, 2)), 'explicit')
    """

    kind: str
    text: str
    index: int
    line: int = 1
    column: int = 1
    name: str | None = None
    kernel: tuple[int, ...] | None = None
    channels: int | None = None
    stride: tuple[int, ...] | None = None
    padding: tuple[tuple[int, int], ...] | None = None
    padding_mode: str = "default"
    dilation: tuple[int, ...] | None = None
    groups: int = 1
    output_padding: tuple[int, ...] | None = None
    bias: bool = True
    ceil_mode: bool = False
    ref: str | None = None
    shape: tuple[int, ...] | None = None
    p: float | None = None
    expects: int | None = None  # input channels/features a model's layer was built for

    @property
    def label(self) -> str:
        return self.name or self.text


class _Scanner:
    """Reads one layer's text, raising SpecError at the exact column."""

    def __init__(self, spec: str, start: int, end: int, index: int):
        self.spec, self.pos, self.end, self.index = spec, start, end, index
        self.text = spec[start:end]

    def fail(self, message: str, pos: int | None = None):
        raise SpecError(message, self.spec, self.pos if pos is None else pos, self.index, self.text)

    def peek(self, n: int = 1) -> str:
        return self.spec[self.pos:min(self.pos + n, self.end)]

    def skip_spaces(self):
        while self.pos < self.end and self.spec[self.pos] in " \t":
            self.pos += 1

    def take(self, pattern: str) -> str | None:
        m = re.compile(pattern).match(self.spec, self.pos, self.end)
        if not m:
            return None
        self.pos = m.end()
        return m.group(0)

    def word(self) -> str:
        return self.take(r"[A-Za-z_]+") or ""

    def integer(self, what: str, minimum: int = 1) -> int:
        start = self.pos
        digits = self.take(r"\d+")
        if digits is None:
            got = self.peek() or "the end of the layer"
            self.fail(f"expected {what} (a whole number), got {got!r}")
        problem = _too_large(what, digits)
        if problem:
            self.fail(problem, start)
        value = int(digits)
        if value < minimum:
            self.fail(f"{what} must be at least {minimum}, got {value}", start)
        return value

    def pair(self, what: str, minimum: int = 1) -> tuple[int, int]:
        a = self.integer(what, minimum)
        b = self.integer(what, minimum) if self.take("x") else a
        return a, b

    def expect(self, char: str, what: str):
        if self.peek(len(char)) != char:
            got = self.peek() or "the end of the layer"
            self.fail(f"expected '{char}' {what}, got {got!r}")
        self.pos += len(char)

    def identifier(self) -> str:
        name = self.take(r"[A-Za-z_]\w*")
        if not name:
            self.fail(f"expected a layer name, got {self.peek() or 'the end of the layer'!r}")
        return name


def parse_shape(text: str) -> tuple[int, ...]:
    """Parse ``"3x112x112"`` into ``(3, 112, 112)``.

    >>> parse_shape("10x1x32x32")
    (10, 1, 32, 32)
    """
    s = str(text).strip().lower().replace("×", "x").replace(",", "x").strip("()[] ")
    parts = [p.strip() for p in s.split("x")]
    if not parts or not all(p.isdigit() for p in parts):
        raise SpecError(f"cannot read the shape {text!r}: expected positive sizes such as 3x112x112", str(text), 0)
    for p in parts:
        problem = _too_large("the size", p)
        if problem:
            raise SpecError(f"in the shape {text!r}: {problem}", str(text), str(text).find(p))
    if not all(int(p) > 0 for p in parts):
        raise SpecError(f"cannot read the shape {text!r}: expected positive sizes such as 3x112x112", str(text), 0)
    return tuple(int(p) for p in parts)


def _split(spec: str):
    """Yield (start, end) offsets of the layer items, skipping comments and blanks."""
    pos = 0
    for m in re.finditer(r"#[^\n]*|[,\n]|$", spec):
        start, end = pos, m.start()
        while start < end and spec[start].isspace():
            start += 1
        while end > start and spec[end - 1].isspace():
            end -= 1
        if start < end:
            yield start, end
        pos = m.end()


def _parse_options(sc: _Scanner, kind: str) -> dict:
    allowed = OPTIONS.get(kind, ())
    opts: dict = {}
    while sc.peek() == "/":
        sc.pos += 1
        at = sc.pos
        key = (sc.take(r"ceil|nb|op|[a-z]") or "")
        if key not in allowed:
            listing = ", ".join(allowed) if allowed else "none"
            shown = key or sc.peek() or "nothing"
            sc.fail(f"option '{shown}' is not known for {kind} (options: {listing})", at)
        if key in opts:
            sc.fail(f"option '{key}' is given twice", at)
        if key == "nb":
            opts[key] = True
        elif key == "ceil":
            opts[key] = True
        elif key == "p" and sc.peek(4) in ("same", "vali"):
            mode = sc.take(r"same|valid")
            if mode is None:
                sc.fail("expected 'same' or 'valid' after '/p'")
            if kind != "conv":
                sc.fail(f"padding '{mode}' is only defined for conv layers", at)
            opts[key] = mode
        elif key in ("p", "op"):
            opts[key] = sc.pair("padding" if key == "p" else "output padding", minimum=0)
        elif key == "g":
            opts[key] = sc.integer("groups")
        else:
            opts[key] = sc.pair({"s": "stride", "d": "dilation"}[key])
    return opts


def _parse_item(spec: str, start: int, end: int, index: int) -> Layer:
    sc = _Scanner(spec, start, end, index)
    name = None
    m = re.compile(r"([A-Za-z_]\w*)\s*:\s*").match(spec, start, end)
    if m:
        name = m.group(1)
        sc.pos = m.end()
    text = spec[sc.pos:end]
    sc.text = text
    head = sc.pos
    word = sc.word()
    low = word.lower()
    if low == "convt":
        kind = "convT"
    elif low in FORMS or low in SIMPLE:
        kind = low
    else:
        sc.fail(f"unknown layer {word or sc.peek()!r}; known layers: {', '.join(KNOWN)}", head)
    line = spec.count("\n", 0, head) + 1
    column = head - (spec.rfind("\n", 0, head) + 1) + 1
    common = dict(kind=kind, text=text, index=index, line=line, column=column, name=name)

    if kind == "input":
        sc.skip_spaces()
        dims = [sc.integer("a size")]
        while sc.take("[xX]"):
            dims.append(sc.integer("a size"))
        if len(dims) not in (1, 2, 3, 4):
            sc.fail(f"an input shape has 1 to 4 sizes (F, NxF, CxHxW, NxCxHxW), got {len(dims)}", head)
        layer = Layer(shape=tuple(dims), **common)
    elif kind in ("conv", "convT", "maxpool", "avgpool"):
        k = sc.pair("the kernel size")
        channels = None
        if kind in ("conv", "convT"):
            sc.expect("-", f"and the number of output channels ({FORMS[kind]})")
            channels = sc.integer("the number of output channels")
        opts = _parse_options(sc, kind)
        d = opts.get("d", (1, 1))
        if kind == "convT" or kind.endswith("pool"):
            s = opts.get("s", k if kind.endswith("pool") else (1, 1))
        else:
            s = opts.get("s", (1, 1))
        p = opts.get("p")
        if p is None:
            mode = "default"
            if kind == "conv":
                pads = tuple(((di * (ki - 1)) // 2,) * 2 for ki, di in zip(k, d))
            else:
                pads = ((0, 0), (0, 0))
        elif p == "same":
            mode = "same"
            if s != (1, 1):
                sc.fail(f"padding 'same' needs stride 1 (as in PyTorch), got stride {s}", head)
            pads = tuple(same_padding(ki, di) for ki, di in zip(k, d))
        elif p == "valid":
            mode, pads = "valid", ((0, 0), (0, 0))
        else:
            mode, pads = "explicit", tuple((pi, pi) for pi in p)
        layer = Layer(
            kernel=k, channels=channels, stride=s, padding=pads, padding_mode=mode,
            dilation=d, groups=opts.get("g", 1), output_padding=opts.get("op", (0, 0)) if kind == "convT" else None,
            bias=not opts.get("nb", False), ceil_mode=opts.get("ceil", False), **common,
        )
    elif kind == "fc":
        sc.expect("-", f"and the number of outputs ({FORMS['fc']})")
        n = sc.integer("the number of outputs")
        opts = _parse_options(sc, kind)
        layer = Layer(channels=n, bias=not opts.get("nb", False), **common)
    elif kind in REFS:
        sc.expect("(", f"and a layer name ({FORMS[kind]})")
        sc.skip_spaces()
        ref = sc.identifier()
        sc.skip_spaces()
        sc.expect(")", f"after the name ({FORMS[kind]})")
        layer = Layer(ref=ref, **common)
    else:
        p = None
        if kind == "dropout":
            num = sc.take(r"0?\.\d+|0|1(\.0*)?")
            p = float(num) if num else 0.5
        layer = Layer(p=p, **common)
    if sc.pos < end:
        rest = spec[sc.pos:end]
        hint = f"; options start with '/' ({', '.join(OPTIONS[kind])})" if kind in OPTIONS else ""
        sc.fail(f"unexpected {rest!r} after {FORMS.get(kind, kind)}{hint}")
    return layer


def parse_spec(spec: str) -> list[Layer]:
    """Parse a spec string into a list of :class:`Layer`.

    >>> [l.kind for l in parse_spec("input 3x32x32, conv3-16/s2, relu, fc-10")]
    ['input', 'conv', 'relu', 'fc']
    >>> parse_spec("conv4-128/s2/p1")[0].padding
    ((1, 1), (1, 1))
    """
    if not isinstance(spec, str):
        raise TypeError(f"a spec is a string, got {type(spec).__name__}")
    layers: list[Layer] = []
    names: dict[str, int] = {}
    for index, (start, end) in enumerate(_split(spec), 1):
        layer = _parse_item(spec, start, end, index)
        if layer.kind == "input" and layers:
            raise SpecError("'input' must be the first layer", spec, start, index, spec[start:end])
        if layer.ref is not None and layer.ref not in names:
            known = ", ".join(names) or "none so far"
            at = spec.index(layer.ref, start)
            raise SpecError(f"no earlier layer is named {layer.ref!r} (named: {known})", spec, at, index, layer.text)
        if layer.name is not None:
            if layer.name in names:
                raise SpecError(f"the name {layer.name!r} is already used by layer {names[layer.name]}",
                                spec, start, index, spec[start:end])
            names[layer.name] = index
        layers.append(layer)
    if not layers:
        raise SpecError("the spec has no layers", spec, 0)
    return layers
