"""Math written between dollar signs, as plain text for a terminal, alt text and tooltips.

The report's statements, notes, summaries and captions hold TeX between ``$...$``;
:mod:`nablab.lab.render` turns it into MathML for the page, and :func:`plain_math`
into readable text for everything that is not a page (``nablab lab show``, ``lab list``,
the summaries at the end of ``reproduce``, an image's alt text). A literal dollar is ``\\$``.

>>> plain_math(r"$\\lambda_{\\min}$ of $X^\\top X$")
'λ_min of Xᵀ X'
>>> plain_math(r"$\\bar\\theta_i$, $w_{T+1}$, $\\eta/\\sqrt{G + \\epsilon}$")
'θ̄_i, w_(T+1), η/√(G + ε)'
"""

from __future__ import annotations

import re

__all__ = ["MATH", "plain_math"]

#: One ``$...$`` span; ``\\$`` is a literal dollar.
MATH = re.compile(r"(?<!\\)\$((?:\\.|[^\\$])+?)\$")

_PLAIN = {
    r"\top": "ᵀ", r"\ast": "*", r"\star": "*", r"\cdot": "·", r"\times": "×", r"\le": "≤", r"\leq": "≤",
    r"\ge": "≥", r"\geq": "≥", r"\ne": "≠", r"\neq": "≠", r"\approx": "≈", r"\to": "→", r"\in": "∈",
    r"\infty": "∞", r"\nabla": "∇", r"\partial": "∂", r"\sum": "Σ", r"\prod": "∏", r"\sqrt": "√",
    r"\|": "‖", r"\{": "{", r"\}": "}", r"\ldots": "…", r"\dots": "…", r"\pm": "±", r"\mid": "|",
    r"\langle": "⟨", r"\rangle": "⟩", r"\lVert": "‖", r"\rVert": "‖", r"\,": " ", r"\;": " ", r"\quad": " ",
    r"\min": "min", r"\max": "max", r"\log": "log", r"\exp": "exp", r"\ln": "ln",
}
_GREEK = ["alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta",
          "iota", "kappa", "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi", "varphi",
          "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Phi", "Psi", "Omega"]
_GREEK_CHARS = "αβγδεεζηθϑικλμνξπρστυφφχψωΓΔΘΛΞΠΣΦΨΩ"
_PLAIN.update({"\\" + name: ch for name, ch in zip(_GREEK, _GREEK_CHARS)})
_COMMAND = re.compile(r"\\(?:[A-Za-z]+|.)")


_ACCENT = {"bar": "\u0304", "tilde": "\u0303", "hat": "\u0302"}   # combining macron, tilde, circumflex


def _group(text: str) -> str:
    """A braced group as plain text: bare when it is one symbol, name or number, else in parentheses."""
    text = text.strip()
    return text if re.fullmatch(r"\\?[A-Za-z]+|-?[0-9.]+|\\[A-Za-z]+\s*[A-Za-z0-9]?", text) else f"({text})"


def _plain_tex(tex: str) -> str:
    tex = tex.replace(r"\{", "\x00").replace(r"\}", "\x01")      # literal braces survive the brace stripping
    tex = re.sub(r"\\(?:mathrm|mathbf|mathit|operatorname|text|mathbb|mathcal)\s*\{([^{}]*)\}", r"\1", tex)
    tex = re.sub(r"\\(bar|tilde|hat)\s*\{([^{}]*)\}", lambda m: m.group(2) + _ACCENT[m.group(1)], tex)
    tex = re.sub(r"\\(bar|tilde|hat)\s*(\\[A-Za-z]+|[A-Za-z0-9])",
                 lambda m: _PLAIN.get(m.group(2), m.group(2).lstrip("\\")) + _ACCENT[m.group(1)], tex)
    tex = re.sub(r"\\t?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}", r"(\1)/(\2)", tex)
    tex = re.sub(r"\\sqrt\s*\{([^{}]*)\}", lambda m: "√" + _group(m.group(1)), tex)
    tex = re.sub(r"\^\s*\\top", "ᵀ", tex)
    tex = re.sub(r"([_^])\{([^{}]*)\}", lambda m: m.group(1) + _group(m.group(2)), tex)
    tex = re.sub(r"\\(partial|nabla)(?![A-Za-z])\s*", lambda m: "∂" if m.group(1) == "partial" else "∇", tex)
    tex = _COMMAND.sub(lambda m: _PLAIN.get(m.group(0), m.group(0)[1:]), tex)
    tex = tex.replace("{", "").replace("}", "").replace("~", " ")
    return tex.replace("\x00", "{").replace("\x01", "}")


def plain_math(text) -> str:
    """``text`` with its ``$...$`` math as readable plain text (for alt text, tooltips, a terminal)."""
    text = "" if text is None else str(text)
    return MATH.sub(lambda m: _plain_tex(m.group(1).strip()), text).replace("\\$", "$")


