"""`nablab reproduce --pdf`: the page printed to report.pdf by a headless Chromium, inside the report."""

import json
import re

import pytest
from typer.testing import CliRunner

from nablab.cli import app
from nablab.lab import pdf, report

needs_chromium = pytest.mark.skipif(pdf.browser() is None, reason="Chromium is not installed")


@needs_chromium
def test_the_pdf_is_part_of_the_report_and_a_rerun_replaces_it(tmp_path, fake_experiments, fake_result):
    fake_experiments({"data.one-hot": lambda run: fake_result()})
    out = tmp_path / "report"
    report.reproduce(out, only=["data.one-hot"], quick=True, pdf=True)
    data = (out / "report.pdf").read_bytes()
    assert data[:5] == b"%PDF-" and len(re.findall(rb"/Type\s*/Page\b", data)) >= 1
    assert "report.pdf" in json.loads((out / report.MARKER).read_text())["files"]   # the report's own file
    report.reproduce(out, only=["data.one-hot"], quick=True)                       # so a rerun may replace it
    assert not (out / "report.pdf").exists()


def test_a_failed_print_keeps_the_report_and_says_why(tmp_path, fake_experiments, fake_result, monkeypatch):
    def broken(page, target, timeout=180):
        target.write_bytes(b"half")
        raise RuntimeError("chromium did not print")

    monkeypatch.setattr(pdf, "print_pdf", broken)
    fake_experiments({"data.one-hot": lambda run: fake_result()})
    said = []
    out = tmp_path / "report"
    report.reproduce(out, only=["data.one-hot"], quick=True, pdf=True, notice=said.append)
    assert (out / "index.html").is_file() and not (out / "report.pdf").exists()
    assert said == ["no report.pdf: chromium did not print"]


def test_the_cli_refuses_pdf_without_a_browser_before_running_anything(tmp_path, monkeypatch):
    monkeypatch.setattr(pdf, "browser", lambda: None)
    r = CliRunner().invoke(app, ["reproduce", "--only", "data.one-hot", "--quick", "--pdf", "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "--pdf needs Chromium" in r.output
    assert not (tmp_path / "r").exists()
