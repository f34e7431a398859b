"""A run's settings from a TOML file: ``nablab train --config run.toml``.

The file holds :class:`~nablab.train.TrainConfig` fields at its top level, in their Python
names (``batch_size``, ``weight_decay``); a field left out keeps its default, and
``divergence_factor = "off"`` turns that check off (TOML has no ``None``). A relative ``data``
path is read from the file's folder. The file is parsed by :mod:`tomllib`, never evaluated.
A key that is not a field, a value of the wrong type or out of range, and a file that is not
TOML are refused with :class:`ConfigFileError`, which names the file, the line and the key.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "run.toml"
>>> _ = path.write_text('model = "mlp"\\nhidden = 32\\nlr = 0.1  # a comment\\n', encoding="utf-8")
>>> read_config_file(path)
{'model': 'mlp', 'hidden': 32, 'lr': 0.1}
>>> _ = path.write_text('model = "mlp"\\nhiden = 32\\n', encoding="utf-8")
>>> read_config_file(path)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
nablab.errors.ConfigFileError: .../run.toml, line 2: unknown key 'hiden' (did you mean 'hidden'?); ...
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path

from nablab.errors import ConfigFileError

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

__all__ = ["ConfigFileError", "read_config_file"]


def _fields():
    """Each TrainConfig field and the Python types its value may have (None among them if optional)."""
    from nablab.train.loop import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    kinds = {}
    for f in dataclasses.fields(TrainConfig):
        hint = hints[f.name]
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
            else (hint,)
        kinds[f.name] = tuple(args)
    return kinds


_TYPE_WORDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _type_word(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a table"
    return {str: "a string", int: "an integer", float: "a number", list: "an array"}.get(type(value), type(value).__name__)


def _key_line(text: str, key: str) -> int | None:
    """The line on which ``key`` is set (``key =``, ``"key" =``) at the top of the file, or None."""
    pattern = re.compile(rf"""^\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*=""")
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("["):   # a table starts: its keys are not top-level
            return None
        if pattern.match(line):
            return number
    return None


def _table_line(text: str, key: str) -> int | None:
    """The line of a ``[key]`` table header, or None."""
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(rf"^\s*\[+\s*{re.escape(key)}\s*[\].]", line):
            return number
    return None


def _coerce(name: str, value, allowed: tuple):
    """``value`` as field ``name`` takes it, or a message saying what it should have been."""
    if name == "divergence_factor" and isinstance(value, str) and value.strip().lower() in ("off", "none"):
        return None, None
    wants = [t for t in allowed if t is not type(None)]
    if isinstance(value, bool) and bool not in wants:
        return None, f"{name} must be {_TYPE_WORDS[wants[0]]}, got a boolean ({str(value).lower()})"
    if float in wants and isinstance(value, (int, float)):
        return float(value), None
    if any(isinstance(value, t) for t in wants):
        return value, None
    extra = " or \"off\"" if name == "divergence_factor" else ""
    return None, (f"{name} must be {_TYPE_WORDS[wants[0]]}{extra}, got {_type_word(value)} ({value!r})")


def read_config_file(path) -> dict:
    """The TrainConfig fields set in the TOML file ``path``, checked one by one.

    Raises :class:`ConfigFileError` (naming the file, line and key) for an unreadable or
    non-TOML file, an unknown key, a value of the wrong type, or one the field refuses.

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.toml"
    >>> _ = path.write_text('epochs = 3\\nlr = "fast"\\n', encoding="utf-8")
    >>> read_config_file(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nablab.errors.ConfigFileError: .../run.toml, line 2: lr must be a number, got a string ('fast')
    """
    from nablab.train.loop import TrainConfig

    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigFileError(path, f"cannot read it: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigFileError(path, f"not a TOML file: not UTF-8 text (byte {exc.start + 1})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        if line is None:
            m = re.search(r"line (\d+)", str(exc))
            line = int(m.group(1)) if m else None
        message = getattr(exc, "msg", None) or re.sub(r"\s*\(at line \d+, column \d+\)$", "", str(exc))
        raise ConfigFileError(path, f"not valid TOML: {message}", line=line) from None

    kinds = _fields()
    out = {}
    for key, value in doc.items():
        line = _key_line(text, key) or _table_line(text, key)
        if key not in kinds:
            close = difflib.get_close_matches(key.replace("-", "_"), list(kinds), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigFileError(path, f"unknown key {key!r}{hint}; the keys are TrainConfig's fields: "
                                        f"{', '.join(kinds)}", line=line, key=key)
        value, problem = _coerce(key, value, kinds[key])
        if problem is None:
            try:   # the field's own rule (a known model, lr >= 0, ...), the other fields at their defaults
                TrainConfig(**{key: value}).validate()
            except ValueError as exc:
                problem = str(exc)
        if problem is not None:
            raise ConfigFileError(path, problem, line=line, key=key)
        if key == "data" and value is not None:
            data = Path(value).expanduser()
            value = str(data if data.is_absolute() else path.parent / data)
        out[key] = value
    return out
