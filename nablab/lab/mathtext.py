"""Math written between dollar signs, as plain text for a terminal, alt text and tooltips.

The report's statements, notes, summaries and captions hold TeX between ``$...$``;
:mod:`nablab.lab.render` turns it into MathML for the page, and :func:`plain_math`
into readable text for everything that is not a page (``nablab lab show``, ``lab list``,
the summaries at the end of ``reproduce``, an image's alt text). A literal dollar is ``\\$``.

>>> plain_math(r"$\\lambda_{\\min}$ of $X^\\top X$")
'λ_min of Xᵀ X'
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


def _plain_tex(tex: str) -> str:
    tex = re.sub(r"\\(?:mathrm|mathbf|mathit|operatorname|text|mathbb|mathcal|tilde|hat|bar)\s*\{([^{}]*)\}",
                 r"\1", tex)
    tex = re.sub(r"\\t?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}", r"(\1)/(\2)", tex)
    tex = re.sub(r"\^\s*\\top", "ᵀ", tex)
    tex = _COMMAND.sub(lambda m: _PLAIN.get(m.group(0), m.group(0)[1:]), tex)
    tex = re.sub(r"([_^])\{([^{}]*)\}", r"\1\2", tex)
    return tex.replace("{", "").replace("}", "").replace("~", " ")


def plain_math(text) -> str:
    """``text`` with its ``$...$`` math as readable plain text (for alt text, tooltips, a terminal)."""
    text = "" if text is None else str(text)
    return MATH.sub(lambda m: _plain_tex(m.group(1).strip()), text).replace("\\$", "$")


