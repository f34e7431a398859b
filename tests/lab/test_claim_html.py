"""A claim in a notebook: ``Claim._repr_html_`` is well-formed HTML, escapes text and shows math."""

import sys
import xml.etree.ElementTree as ET

import pytest

from nablab.lab import CLAIMS, get_claim
from nablab.lab.claims import Claim
from nablab.lab.slots import Slot


def parse(page):
    return ET.fromstring(f"<div>{page}</div>")


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_every_claim_is_well_formed(claim):
    root = parse(claim._repr_html_())
    text = "".join(root.itertext())
    assert claim.id in text
    rows = root.findall(".//tbody/tr")
    assert [r.find("td/code").text for r in rows] == list(claim.slots)


def hostile():
    return Claim(id="x.<y>", title="Tags <script>alert(1)</script> & $\\eta$", sets=("000",), section="§1",
                 statement="if a < b & c > d then $x^2$", notes='say "hi" <br>',
                 slots={"s<1>": Slot(name="s<1>", type=get_claim("data.one-hot").slots["vocabulary_size"].type,
                                     help="the <i>size</i> of $V$")})


def test_text_is_escaped_and_math_is_mathml():
    page = hostile()._repr_html_()
    root = parse(page)
    assert root.find(".//script") is None and root.find(".//br") is None and root.find(".//i") is None
    text = "".join(root.itertext())
    assert "<script>alert(1)</script>" in text and "if a < b & c > d then" in text and 'say "hi" <br>' in text
    assert "x.<y>" in text and "s<1>" in text
    pytest.importorskip("latex2mathml")
    maths = root.findall(".//math")
    assert [m.get("alttext") for m in maths] == ["\\eta", "x^2", "V"]   # title, statement, slot help


def test_without_the_report_extra_math_is_plain_escaped_text(monkeypatch):
    monkeypatch.setitem(sys.modules, "nablab.lab.render", None)     # its import now fails
    root = parse(hostile()._repr_html_())
    assert root.find(".//math") is None and root.find(".//script") is None
    text = "".join(root.itertext())
    assert "η" in text and "then x^2" in text and "$" not in text and "<script>alert(1)</script>" in text


def test_a_claim_without_slots_says_so():
    claim = Claim(id="a.b", title="t", sets=("001",), section="Q1", statement="s")
    root = parse(claim._repr_html_())
    assert root.find(".//table") is None and "shown, not graded" in "".join(root.itertext())
