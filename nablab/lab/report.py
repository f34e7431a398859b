"""Run the registered experiments and write the report (``index.html`` + ``claims.json``).

The report is built in a temporary folder beside the destination and swapped in
at the end, so an interrupted or failing run never leaves a half-written report
and keeps the previous one.

>>> from pathlib import Path
>>> records = reproduce(Path("report"), only=["data.one-hot"], quick=True)  # doctest: +SKIP
>>> records[0]["status"]                                                   # doctest: +SKIP
'agrees'

Sweeps inside the experiments run on a local process pool by default
(``scheduler="local"``), on a Dask LocalCluster (``"local-dask"``), on an
existing Dask cluster (``"tcp://HOST:PORT"``) or in this process
(``"serial"``). Their task results are saved beside the report, in
``.<name>.sweeps/``, until the report is written: an interrupted run, started
again with the same options, computes only the tasks that are missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from nablab.lab import registry
from nablab.lab.claims import CLAIMS, CLAIMS_BY_ID, UnknownClaimError
from nablab.lab.registry import STATUSES, Context
from nablab.lab.sweep import open_executor

__all__ = ["reproduce", "select_claims", "write_report", "claim_command", "sweep_folder", "MARKER"]

#: A file every report folder holds; an existing --out folder is only replaced if it has it.
MARKER = ".nablab-report"
_TEMPLATES = Path(__file__).parent / "templates"


def use_agg() -> None:
    """Switch matplotlib to the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)


def select_claims(only: Sequence[str] | None) -> list[str]:
    """Claim ids to run, in catalogue order; unknown ids raise UnknownClaimError.

    >>> select_claims(["data.one-hot", "autodiff.graph"])
    ['autodiff.graph', 'data.one-hot']
    """
    if not only:
        return [c.id for c in CLAIMS]
    wanted = [s.strip() for s in only if s.strip()]
    unknown = [s for s in wanted if s not in CLAIMS_BY_ID]
    if unknown:
        raise UnknownClaimError(unknown)
    return [c.id for c in CLAIMS if c.id in wanted]


def claim_command(claim_id: str, seed: int, quick: bool, params: dict | None = None) -> str:
    """The command that runs one claim again with the same options.

    >>> claim_command("theory.gd-rate", 0, True, {"problems": 4})
    'nablab lab run theory.gd-rate --seed 0 --quick --param problems=4'
    """
    parts = ["nablab lab run", claim_id, f"--seed {seed}"] + (["--quick"] if quick else [])
    for key, value in (params or {}).items():
        text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        parts.append(f"--param {key}={text}")
    return " ".join(parts)


def sweep_folder(out: Path) -> Path:
    """Where a report's sweeps save task results until it is written: ``.<name>.sweeps`` beside it."""
    out = Path(out).expanduser().absolute()
    return out.parent / f".{out.name}.sweeps"


def run_claim(claim_id: str, out_dir: Path, quick: bool, seed: int,
              params: dict | None = None, *, executor=None,
              sweep_dir: Path | None = None) -> tuple[dict, Context]:
    """Run one claim into ``out_dir``; return its report record and the context used.

    ``executor`` and ``sweep_dir`` go to the experiment's sweeps (see :mod:`nablab.lab.sweep`).
    """
    claim = CLAIMS_BY_ID[claim_id]
    ctx = Context(out_dir=out_dir, quick=quick, seed=seed, params=dict(params or {}),
                  claim_id=claim_id, executor=executor, sweep_dir=sweep_dir)
    start = time.perf_counter()
    result = registry.run(claim_id, ctx)
    seconds = time.perf_counter() - start
    if "matplotlib.pyplot" in sys.modules:  # free figures an experiment forgot to close
        sys.modules["matplotlib.pyplot"].close("all")
    record = {
        "id": claim.id, "seed": claim.seed, "statement": claim.statement,
        "title": registry.title(claim_id), "status": result.status,
        "computed": result.computed, "seed_says": result.seed_says,
        "figures": list(result.figures), "summary": result.summary,
        "details": result.details, "seconds": round(seconds, 4),
        "command": claim_command(claim_id, seed, quick, params),
    }
    return record, ctx


def reproduce(out: Path, only: list[str] | None = None, quick: bool = False, seed: int = 0,
              *, progress: Callable[[dict], None] | None = None, scheduler: str | None = "local",
              workers: int | None = None) -> list[dict]:
    """Run the selected claims and write the report to ``out``; return the records.

    ``progress`` is called with each record as soon as its claim finishes.
    ``scheduler`` and ``workers`` choose where sweeps run (see the module's docstring).
    """
    ids = select_claims(only)
    out = Path(out).expanduser().absolute()
    _check_replaceable(out)
    use_agg()
    out.parent.mkdir(parents=True, exist_ok=True)
    sweeps = sweep_folder(out)
    saved = sum(1 for _ in sweeps.rglob("*.npz")) if sweeps.is_dir() else 0
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        started = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        registry.registered()  # import the experiment modules now, not inside the first claim's time
        records = []
        with open_executor(scheduler, workers) as executor:
            for claim_id in ids:
                record, _ = run_claim(claim_id, tmp, quick, seed, executor=executor,
                                      sweep_dir=sweeps)
                records.append(record)
                if progress is not None:
                    progress(record)
        meta = run_metadata(seed=seed, quick=quick, only=only, started=started,
                            seconds=time.perf_counter() - t0)
        meta.update(scheduler=scheduler or "local", workers=workers, saved_task_results_found=saved,
                    command=reproduce_command(only, quick, seed))
        write_report(tmp, records, meta)
        tmp.chmod(0o755)  # mkdtemp makes it private; a report is meant to be read
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            sweeps.rmdir()             # only if no sweep saved anything: those are kept to resume
        raise
    shutil.rmtree(sweeps, ignore_errors=True)
    return records


def reproduce_command(only, quick: bool, seed: int) -> str:
    """The ``nablab reproduce`` options of a run (without ``--out`` and the scheduler).

    >>> reproduce_command(["autodiff.graph"], True, 3)
    'nablab reproduce --only autodiff.graph --seed 3 --quick'
    """
    return " ".join(["nablab reproduce"] + ([f"--only {','.join(only)}"] if only else [])
                    + [f"--seed {seed}"] + (["--quick"] if quick else []))


def run_metadata(*, seed: int, quick: bool, only, started: datetime, seconds: float) -> dict:
    """Versions, platform, seed and timing of a run."""
    versions = {"python": platform.python_version()}
    for dist in ("nablab", "numpy", "scipy", "matplotlib", "torch", "jinja2"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(seconds, 3), "seed": seed, "quick": quick,
        "only": list(only) if only else None, "versions": versions,
        "platform": f"{platform.system()} {platform.machine()}",
        "load_errors": registry.load_errors(),
    }


def write_report(folder: Path, records: list[dict], meta: dict) -> None:
    """Write ``index.html``, ``claims.json``, ``run.json`` and the marker into ``folder``."""
    counts = {s: sum(r["status"] == s for r in records) for s in STATUSES}
    counts = {s: n for s, n in counts.items() if n}
    claims_json = [{k: r.get(k) for k in ("id", "seed", "status", "computed", "seed_says", "figures",
                                          "summary", "seconds", "statement", "title", "command")}
                   for r in records]
    (folder / "claims.json").write_text(
        json.dumps(claims_json, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    (folder / "run.json").write_text(
        json.dumps({**meta, "counts": counts}, indent=2) + "\n", encoding="utf-8")
    html = _render(records=records, meta=meta, counts=counts, load_errors=meta["load_errors"])
    (folder / "index.html").write_text(html, encoding="utf-8")
    (folder / MARKER).write_text("written by nablab reproduce\n", encoding="utf-8")


def _render(**context) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["show"] = _show
    return env.get_template("index.html.j2").render(**context)


def _show(value):
    """Format a computed value for HTML: scalars inline, long structures folded."""
    from markupsafe import Markup, escape

    if isinstance(value, str):
        return escape(value)
    text = json.dumps(value)
    if len(text) <= 200:
        return Markup("<code>%s</code>") % text
    return Markup("<details><summary><code>%s ...</code></summary><pre>%s</pre></details>") % (
        text[:80], _pretty(value))


def _pretty(value, indent: int = 0, width: int = 100) -> str:
    """JSON that breaks a container over lines only where it does not fit in ``width``."""
    flat = json.dumps(value)
    if len(flat) + indent <= width or not isinstance(value, (list, dict)) or not value:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, list):
        items = [pad + _pretty(v, indent + 2, width) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    items = [f"{pad}{json.dumps(str(k))}: {_pretty(v, indent + 2, width)}"
             for k, v in value.items()]
    return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"


def _check_replaceable(out: Path) -> None:
    """Refuse to replace anything that is not an earlier report (or an empty folder)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise FileExistsError(f"--out {out} exists and is not a folder")
    if (out / MARKER).exists() or not any(out.iterdir()):
        return
    raise FileExistsError(f"--out {out} exists and is not a nablab report (no {MARKER} "
                          "file); choose another folder or remove it first")


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace ``out`` by ``tmp`` with renames; on failure the old report is restored."""
    if not out.exists():
        os.rename(tmp, out)
        return
    backup = out.parent / f".{out.name}.old-{secrets.token_hex(4)}"
    os.rename(out, backup)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(backup, out)
        raise
    shutil.rmtree(backup, ignore_errors=True)
