"""The lab's text writes its math as $...$ TeX, and every span of it converts.

Claim titles, statements, notes and help texts (claims.toml), the experiments'
summaries and the figures' alt text hold math between dollar signs: the report
turns each span into MathML (latex2mathml), the terminal into plain text
(plain_math). A span latex2mathml cannot convert would show as raw TeX on the
page, and an odd dollar would swallow the text after it.
"""

import re
import tomllib
from pathlib import Path

import pytest

from nablab.lab.claims import CLAIMS, CLAIMS_BY_ID
from nablab.lab.mathtext import MATH
from nablab.lab.render import math_html, plain_math

pytest.importorskip("latex2mathml")

CATALOGUE = Path(__file__).resolve().parents[2] / "nablab" / "lab" / "data" / "claims.toml"
DOLLAR = re.compile(r"(?<!\\)\$")
#: Fast claims whose summaries and alt texts are checked after a quick run (about ten seconds in all).
RUN = ["autodiff.graph", "data.one-hot", "cnn.conv-output-shape", "arch.rf-recursion", "hyper.graph-two-steps",
       "hyper.one-step-2d", "optim.adagrad-not-min-norm", "theory.sgd-not-monotone", "theory.regret-lemma",
       "theory.gd-rate"]


def _fields():
    """(where, text) for every text field of the catalogue: titles, statements, notes, help."""
    table = tomllib.loads(CATALOGUE.read_text(encoding="utf-8"))
    for cid, claim in table.items():
        for key in ("title", "statement", "notes"):
            if key in claim:
                yield f"{cid} {key}", claim[key]
        for kind in ("params", "slots"):
            for name, spec in claim.get(kind, {}).items():
                if spec.get("help"):
                    yield f"{cid} {kind}.{name}", spec["help"]


FIELDS = list(_fields())


#: The longest formula, in characters of its plain text: an inline formula does not wrap, and a longer one
#: overflows a 400 px screen (split it at an = or a +, into two $...$ spans).
LONGEST = 50


def assert_math_converts(where, text):
    assert len(DOLLAR.findall(text)) % 2 == 0, f"{where}: unbalanced $ in {text!r}"
    for m in MATH.finditer(text):
        assert len(plain_math(m.group(0))) <= LONGEST, f"{where}: ${m.group(1)}$ is too wide for a phone"
    html = str(math_html(text))
    assert '<code class="tex">' not in html, f"{where}: latex2mathml cannot convert a span of {text!r}"
    assert "$" not in re.sub(r"<math.*?</math>", "", html).replace("\\$", ""), f"{where}: a stray $ in {text!r}"


def test_the_catalogue_writes_math_as_tex():
    spans = sum(len(DOLLAR.findall(text)) // 2 for _, text in FIELDS)
    assert spans > 300                  # titles, statements and notes are marked up, not just a few
    for where, text in FIELDS:
        assert_math_converts(where, text)


def test_plain_text_of_titles_and_statements_has_no_tex_left():
    for claim in CLAIMS:
        for text in (claim.title, claim.statement, claim.notes or ""):
            plain = plain_math(text)
            assert "\\" not in plain and "$" not in plain, (claim.id, plain)


def test_specific_conversions():
    sgd = CLAIMS_BY_ID["optim.sgd-min-norm"]
    assert "Xᵀ (X Xᵀ)^-1 t" in plain_math(sgd.statement)
    assert "<msup>" in str(math_html(sgd.statement)) and "<math" in str(math_html(sgd.statement))
    assert plain_math(CLAIMS_BY_ID["hyper.memory-vs-steps"].title).startswith("Memory of dL_t/dη against")
    assert "η^*" in plain_math(CLAIMS_BY_ID["hyper.t-step-2d"].statement)
    assert "λ_min" in plain_math(CLAIMS_BY_ID["optim.nonuniform-sgd"].notes)
    assert "‖w^*‖^2/(2η)" in plain_math(CLAIMS_BY_ID["theory.regret-lemma"].statement)
    assert plain_math(CLAIMS_BY_ID["theory.gd-rate"].title).endswith("O(1/√T)")
    assert plain_math(CLAIMS_BY_ID["theory.gd-1d-divergence"].statement) == \
        "Gradient descent on θ^2/2 diverges exactly when α > 2; α = 2 oscillates."
    # The report's browser test counts the MathML of these claims: each statement holds math.
    for cid in ("autodiff.graph", "cnn.conv-output-shape"):
        assert "<math" in str(math_html(CLAIMS_BY_ID[cid].statement)), cid
    assert "28 × 28" in plain_math(CLAIMS_BY_ID["cnn.conv-output-shape"].statement)
    # Code names stay text: no math inside them.
    assert "nablab.theory" in CLAIMS_BY_ID["optim.sgd-min-norm"].notes
    assert "torch.optim.Adagrad" in plain_math(CLAIMS_BY_ID["optim.adagrad-not-min-norm"].notes)


def test_a_literal_dollar_is_text():
    assert str(math_html(r"costs \$5 and $x^2$")).startswith("costs $5 and <math")
    assert plain_math(r"costs \$5 and $x^2$") == "costs $5 and x^2"


@pytest.mark.parametrize("claim_id", RUN)
def test_summaries_and_alt_texts_convert(tmp_path, claim_id):
    from nablab.lab.report import run_claim

    record, _ = run_claim(claim_id, tmp_path, True, 0)
    assert record["status"] != "error", record["details"]
    assert DOLLAR.search(record["summary"]), f"{claim_id}: the summary writes no math"
    assert_math_converts(f"{claim_id} summary", record["summary"])
    assert "\\" not in plain_math(record["summary"])
    for file, alt in record["alts"].items():
        assert_math_converts(f"{claim_id} alt of {file}", alt)
        assert "\\" not in plain_math(alt) and "$" not in plain_math(alt)
    if claim_id == "autodiff.graph":     # the browser test's superscript: the hand derivative's y^2
        assert "<msup>" in str(math_html(record["summary"]))


def test_the_claims_table_writes_math_as_plain_text():
    import importlib.util

    path = CATALOGUE.parents[3] / "scripts" / "claims_table.py"
    spec = importlib.util.spec_from_file_location("claims_table", path)
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    claims = [{"id": "a.b", "seed": "000 §1", "status": "disagrees", "title": r"The optimal $\eta^*$ | rate",
               "seconds": 1.0, "summary": r"It is $\eta^* = 0.25$, not $w^*$."}]
    text = table.render(claims)
    assert "| The optimal η^\\* \\| rate |" in text
    assert "It is η^\\* = 0.25, not w^\\*." in text and "$" not in text and "\\eta" not in text
