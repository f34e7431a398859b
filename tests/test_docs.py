"""The docs: every page's examples run (pytest collects docs/*.md as doctests), and the
claims table covers the catalogue."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from nablab.lab.claims import CLAIMS

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["autodiff", "numpy", "nn", "optim", "hyper", "arch", "linop", "data", "train", "lab"]


def test_a_page_per_capability_each_with_examples_linked_from_the_index():
    index = (ROOT / "docs" / "index.md").read_text()
    for page in PAGES:
        text = (ROOT / "docs" / f"{page}.md").read_text()
        assert ">>> " in text, page
        assert f"({page}.md)" in index
    assert "docs/" in (ROOT / "README.md").read_text()


def test_the_suite_collects_the_pages_as_doctests():
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:xdist",
                          str(ROOT / "docs")], capture_output=True, text=True, cwd=ROOT)
    collected = {Path(line.split("::")[0]).stem for line in out.stdout.splitlines() if "::" in line}
    assert set(PAGES) <= collected, out.stdout + out.stderr


def test_claims_table_lists_every_claim_with_a_status():
    text = (ROOT / "docs" / "claims.md").read_text()
    rows = dict(re.findall(r"^\| `([^`]+)` \| [^|]+ \| ([a-z-]+) \|", text, re.M))
    assert list(rows) == [c.id for c in CLAIMS]
    assert set(rows.values()) <= {"agrees", "disagrees", "reproduced", "needs-data"}


def test_claims_table_script(tmp_path):
    claims = [{"id": "a.b", "seed": "001 P1", "status": "disagrees", "title": "A | B", "seconds": 1.5,
               "summary": "The seed says 3; it is 4."}]
    (tmp_path / "claims.json").write_text(json.dumps(claims))
    (tmp_path / "run.json").write_text(json.dumps({"command": "nablab reproduce --seed 0", "seed": 0,
                                                   "seconds": 2.0, "versions": {"nablab": "0.1.0"}}))
    out = tmp_path / "claims.md"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "claims_table.py"), str(tmp_path / "claims.json"),
                    "--out", str(out)], check=True)
    text = out.read_text()
    assert "| `a.b` | 001 P1 | disagrees | A \\| B | 1.50 |" in text
    assert "**1 disagrees**" in text and "The seed says 3; it is 4." in text
    assert "nablab reproduce --seed 0 --out report/" in text and "nablab 0.1.0" in text


def test_the_site_builds_strictly(tmp_path):
    """``mkdocs build --strict``: a broken link, a page missing from the navigation or a
    ``::: module`` that does not resolve fails the build; any warning fails this test too."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "NO_COLOR": "1"}
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log
    assert not re.search(r"^(WARNING|ERROR)\b", log, re.M), log
    api = (tmp_path / "site" / "api" / "optim.html").read_text()
    # the API reference has the functions, with their examples as code (not as Markdown quotes)
    assert 'id="nablab.optim.adam"' in api and '<span class="gp">&gt;&gt;&gt; </span>' in api
    assert "<blockquote>" not in api
    for page in PAGES + ["claims", "index"]:
        assert (tmp_path / "site" / f"{page}.html").is_file(), page


def test_the_api_pages_list_only_public_names():
    """A name listed under ``members:`` on an API page is in its module's ``__all__`` (a renamed
    function would otherwise drop out of the reference silently)."""
    import importlib

    for page in (ROOT / "docs" / "api").glob("*.md"):
        for module, options in re.findall(r"^::: (\S+)\n((?:    .*\n)*)", page.read_text(), re.M):
            listed = re.findall(r"^        - (\w+)$", options, re.M)
            public = set(getattr(importlib.import_module(module), "__all__", []))
            assert set(listed) <= public, (page.name, module, set(listed) - public)
