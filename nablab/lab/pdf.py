"""The report as a PDF, printed by a headless Chromium from the page's print stylesheet.

Nothing is downloaded: the browser is the one installed on the machine (Debian:
``apt-get install chromium``), found on ``PATH`` under its usual names.

>>> from nablab.lab.pdf import browser
>>> browser() is None or browser().endswith(("chromium", "chromium-browser", "google-chrome", "chrome"))
True
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["browser", "print_pdf", "BROWSERS"]

#: The names a Chromium goes by on PATH, tried in this order.
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def browser() -> str | None:
    """The path of an installed Chromium, or None."""
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def print_pdf(page: Path, pdf: Path, timeout: float = 180) -> Path:
    """Print the HTML file ``page`` to ``pdf`` with a headless Chromium; returns ``pdf``.

    Raises ``RuntimeError`` naming what went wrong: no browser, the browser failing
    (with the end of what it printed), or no PDF written.
    """
    found = browser()
    if found is None:
        raise RuntimeError("printing the report to PDF needs Chromium, which is not installed "
                           "(Debian: apt-get install chromium)")
    page, pdf = Path(page).resolve(), Path(pdf).resolve()
    with tempfile.TemporaryDirectory(prefix="nablab-pdf-") as profile:  # a fresh profile: no user state read
        try:
            run = subprocess.run(
                [found, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions",
                 "--disable-background-networking", "--disable-component-update", "--no-pdf-header-footer",
                 f"--user-data-dir={profile}", f"--print-to-pdf={pdf}", page.as_uri()],
                capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{found} did not print {page} to PDF within {timeout:g} s") from None
    if run.returncode != 0 or not pdf.is_file() or pdf.read_bytes()[:5] != b"%PDF-":
        tail = "\n".join((run.stderr or run.stdout).strip().splitlines()[-5:])
        raise RuntimeError(f"{found} did not print {page} to {pdf} (exit status {run.returncode})"
                           + (f":\n{tail}" if tail else ""))
    return pdf
