"""The report in a real browser: headless Chromium opens it from disk (file://).

Skipped where Chromium is not installed; scripts/test.sh installs Debian's
``chromium`` in CI. Chromium writes every console message of the page to
stderr with ``--enable-logging=stderr`` (lines with ``:CONSOLE``); the report
has no scripts, so any such line is a failure.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
                None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium; "
                             "scripts/test.sh installs it when CI is set and it runs as root)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]
CLAIMS = ["autodiff.graph", "cnn.conv-output-shape", "data.one-hot"]


def chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium on ``page`` with a fresh profile; stdout and stderr captured."""
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


def console_messages(stderr: str) -> list[str]:
    """The page's console messages and uncaught errors in Chromium's log."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "report"
    env = {**os.environ, "COLUMNS": "120"}
    run = subprocess.run([sys.executable, "-m", "nablab", "reproduce", "--out", str(out), "--quick",
                          "--only", ",".join(CLAIMS)], capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return out


def test_the_page_loads_from_disk_with_the_claims_table_and_no_console_errors(report_dir, tmp_path):
    run = chromium(report_dir / "index.html", tmp_path / "profile", "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    assert console_messages(run.stderr) == []
    table = re.search(r'<table class="claims".*?</table>', dom, re.S)
    assert table, dom[:2000]
    rows = re.findall(r'<a href="#([^"]+)"><code>', table.group(0))
    assert rows == CLAIMS
    assert table.group(0).count('class="badge s-') == len(CLAIMS)
    for cid in CLAIMS:                      # each row links to its section, which has the command
        assert f'<section class="claim" id="{cid}">' in dom
        assert f"nablab lab run {cid} --seed 0 --quick" in dom
    assert dom.index('class="claims"') < dom.index('<section class="claim"')   # the table opens the page
    for src in re.findall(r'<img src="([^"]+)"', dom):
        assert (report_dir / src).is_file(), src


def test_a_screenshot_shows_the_claims_table(report_dir, tmp_path):
    import matplotlib.image

    shot = tmp_path / "report.png"
    run = chromium(report_dir / "index.html", tmp_path / "profile", "--window-size=1200,900",
                   f"--screenshot={shot}", "--hide-scrollbars")
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    assert console_messages(run.stderr) == []
    img = matplotlib.image.imread(shot)[..., :3]
    assert img.shape[:2] == (900, 1200)
    top = img[: img.shape[0] // 2]
    # The status badges of the table are drawn in the upper half: their colours are there.
    for rgb in ((0x1A, 0x7F, 0x37), (0x09, 0x69, 0xDA)):    # agrees (green), reproduced (blue)
        near = (abs(top - [c / 255 for c in rgb]) < 0.04).all(axis=-1)
        assert near.sum() > 100, f"no badge of colour {rgb} in the top half of {shot}"
    if os.environ.get("NABLAB_SCREENSHOT"):
        shutil.copy(shot, os.environ["NABLAB_SCREENSHOT"])


def test_console_errors_would_be_caught(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><p>x</p><script>console.error("seen"); throw new Error("boom")</script>')
    run = chromium(page, tmp_path / "profile", "--dump-dom")
    messages = console_messages(run.stderr)
    assert any('"seen"' in m for m in messages) and any("Uncaught Error: boom" in m for m in messages)
