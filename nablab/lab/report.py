"""Run the registered experiments and write the report (``index.html`` + ``claims.json``).

The report is built in a temporary folder beside the destination and swapped in
at the end, so an interrupted or failing run never leaves a half-written report
and keeps the previous one. Only an empty folder or an earlier report (nothing
in it but the files that report wrote) is replaced; that is checked at the start
and again at the swap. A run killed while swapping leaves the previous report
beside the destination, and the next run puts it back; temporary folders of
killed runs are removed by the next run (a lock held while a run is alive tells
them apart from those of runs still going).

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
import functools
import itertools
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from nablab.lab import registry
from nablab.lab.claims import CLAIMS, CLAIMS_BY_ID, select_ids
from nablab.lab.registry import STATUSES, Context, fault_point
from nablab.lab.sweep import open_executor

try:
    import fcntl
except ImportError:  # not POSIX: temporary folders of killed runs are then left alone
    fcntl = None

__all__ = ["reproduce", "select_claims", "write_report", "claim_command", "sweep_folder", "MARKER",
           "OutChangedError"]

#: A file every report folder holds, listing the files the report wrote; an existing
#: --out folder is only replaced if it holds nothing else.
MARKER = ".nablab-report"
#: Locked (flock) by the run that builds a folder, for as long as that run lives.
_LOCK = ".nablab-lock"
_REPORT_FILES = ("index.html", "claims.json", "run.json")


class OutChangedError(FileExistsError):
    """``--out`` was given files nablab did not write during the run; the new report was put beside it."""


def use_agg() -> None:
    """Switch matplotlib to the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)


def select_claims(only: Sequence[str] | None) -> list[str]:
    """Claim ids to run, in catalogue order: ids, globs or prefixes (see :func:`~nablab.lab.claims.select_ids`).

    >>> select_claims(["data.one-hot", "autodiff.graph"])
    ['autodiff.graph', 'data.one-hot']
    >>> select_claims(["arch.rf-*"])
    ['arch.rf-factors', 'arch.rf-recursion']
    """
    if not only or not any(s.strip() for s in only):
        return [c.id for c in CLAIMS]
    return select_ids(only)


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
    out = _target(out)
    return out.parent / f".{out.name}.sweeps"


def _target(out: Path) -> Path:
    """The absolute folder to write; a symbolic link is followed, so the link keeps pointing at the report."""
    out = Path(out).expanduser().absolute()
    return out.resolve() if out.is_symlink() else out


def run_claim(claim_id: str, out_dir: Path, quick: bool, seed: int,
              params: dict | None = None, *, executor=None,
              sweep_dir: Path | None = None,
              progress: Callable[[int, int, str], None] | None = None) -> tuple[dict, Context]:
    """Run one claim into ``out_dir``: compute it, draw it, grade its answer sets.

    Returns its report record and the context used. ``params`` are the user's
    overrides of the claim's parameters; ``executor`` and ``sweep_dir`` go to
    the experiment's sweeps (see :mod:`nablab.lab.sweep`); ``progress(done,
    total, what)`` hears what the experiment says with ``run.progress``.
    """
    claim = CLAIMS_BY_ID[claim_id]
    ctx = Context(out_dir=out_dir, quick=quick, seed=seed, params=dict(params or {}),
                  claim_id=claim_id, executor=executor, sweep_dir=sweep_dir, on_progress=progress)
    if claim_id not in registry.registered():
        return _not_implemented(claim, ctx, params), ctx
    return _run_computed(claim, ctx, params), ctx


def _not_implemented(claim, ctx: Context, params) -> dict:
    return {
        "id": claim.id, "seed": claim.seed, "source": claim.source, "statement": claim.statement,
        "title": claim.title, "status": "not-implemented", "reason": "", "computed": {}, "seed_says": None, "figures": [], "alts": {},
        "summary": "No experiment is registered for this claim yet.", "details": "", "seconds": 0.0,
        "command": claim_command(claim.id, ctx.seed, ctx.quick, params), "cross_checks": {},
        "slots": {}, "grades": {},
    }


def _run_computed(claim, ctx: Context, overrides: dict | None) -> dict:
    """A record for a claim written as compute and figure: computed once, graded on its answer sets."""
    from nablab.lab.grading import grade_claim, verdict
    from nablab.lab.render import one_line_reason
    from nablab.lab.sheets import answer_sets
    from nablab.lab.slots import show

    user_params = dict(ctx.params)
    comp = registry.compute_claim(claim.id, ctx)
    figure_error = registry.draw_claim(claim.id, comp, ctx) if comp.error is None else None
    sheets = answer_sets()
    grades = {}
    changed = sorted(n for n, p in claim.params.items()
                     if p.problem and ctx.params.get(n, p.value(ctx.quick)) != p.value(ctx.quick))
    if comp.error is None and not changed:
        for answer_set in claim.sets:
            sheet = sheets.get(answer_set)
            grades[answer_set] = grade_claim(claim.id, sheet.answers.get(claim.id, {}) if sheet else {},
                                             comp.truths)
    main = grades.get(claim.sets[0])
    # The notes discuss the answer sets' problem: with another one stated they would mislead.
    details = [claim.notes] if claim.notes and not changed else []
    if comp.error or figure_error:
        status = "error"
        summary = f"The experiment failed: {comp.error}" if comp.error else "The figure failed."
        details.append(comp.traceback or figure_error)
        why = summary
    elif comp.needs_data:
        status, summary = "needs-data", comp.summary
        details.append(comp.needs_data)
        why = comp.needs_data
    else:
        status, reason = verdict(main)
        summary = comp.summary
        why = one_line_reason(claim.sets[0], [g.as_json() for g in main.slots]) if status == "disagrees" else ""
        if changed:
            details.insert(0, f"With {', '.join(changed)} changed this is another problem than the one "
                              "the answer sets answer, so they are not graded.")
        if status == "disagrees":
            details.insert(0, f"Answer set {claim.sets[0]} is wrong here: {reason}.")
    for answer_set, grade in grades.items():
        if answer_set != claim.sets[0] and grade.answered:
            wrong = grade.wrong()
            details.append(f"Answer set {answer_set}: " + ("; ".join(s.text() for s in wrong) if wrong
                           else f"all {grade.answered} answered slots are right") + ".")
    says = []
    for answer_set, grade in grades.items():
        given = [g for g in grade.slots if g.outcome != "unanswered"]
        if given:
            says.append(f"Answer set {answer_set}: " + "; ".join(
                f"{g.slot} = {show(g.given)}" + (f" (\"{g.says}\")" if g.says else "") for g in given))
    return {
        "id": claim.id, "seed": claim.seed, "source": claim.source, "statement": claim.statement,
        "title": claim.title, "status": status, "reason": (why.strip().splitlines() or [""])[0],
        "computed": comp.evidence, "seed_says": " ".join(says) or None,
        "figures": list(ctx.figures), "alts": dict(ctx.alts), "summary": summary,
        "details": "\n\n".join(d for d in details if d), "seconds": round(comp.seconds, 4),
        "command": claim_command(claim.id, ctx.seed, ctx.quick, user_params),
        "cross_checks": dict(ctx.cross_checks),
        "slots": registry.to_jsonable(comp.truths, "the slots") if comp.error is None else {},
        "grades": {s: [g.as_json() for g in grade.slots] for s, grade in grades.items()},
    }


def reproduce(out: Path, only: list[str] | None = None, quick: bool = False, seed: int = 0,
              *, progress: Callable[[dict], None] | None = None, scheduler: str | None = "local",
              workers: int | None = None, notice: Callable[[str], None] | None = None,
              claim_progress: Callable[[str, int, int, str], None] | None = None,
              pdf: bool = False) -> list[dict]:
    """Run the selected claims and write the report to ``out``; return the records.

    ``progress`` is called with each record as soon as its claim finishes,
    ``claim_progress(claim_id, done, total, what)`` whenever a running claim
    says how far it has got (``run.progress``), and
    ``notice`` (default: print to stderr) with what was recovered from a killed run.
    ``scheduler`` and ``workers`` choose where sweeps run (see the module's docstring).
    Raises :class:`OutChangedError` if files nablab did not write appeared in ``out``
    during the run: they are left as they are and the new report is put beside them.
    With ``pdf``, the page is also printed to ``report.pdf`` (a headless Chromium; see
    :mod:`nablab.lab.pdf`) before the swap; if printing fails, the report is kept without
    it and ``notice`` says why.
    """
    ids = select_claims(only)
    out = _target(out)
    notice = notice or (lambda text: print(text, file=sys.stderr))
    _check_parent(out)
    _recover(out, notice)
    _check_replaceable(out)
    use_agg()
    out.parent.mkdir(parents=True, exist_ok=True)
    sweeps = sweep_folder(out)
    saved = sum(1 for _ in sweeps.rglob("*.npz")) if sweeps.is_dir() else 0
    tmp, lock = _build_folder(out)
    try:
        started = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        registry.registered()  # import the experiment modules now, not inside the first claim's time
        records = []
        with open_executor(scheduler, workers) as executor:
            for claim_id in ids:
                told = None if claim_progress is None else functools.partial(claim_progress, claim_id)
                record, _ = run_claim(claim_id, tmp, quick, seed, executor=executor,
                                      sweep_dir=sweeps, progress=told)
                records.append(record)
                if progress is not None:
                    progress(record)
                fault_point("claim-done")
        meta = run_metadata(seed=seed, quick=quick, only=only, started=started,
                            seconds=time.perf_counter() - t0)
        meta.update(scheduler=scheduler or "local", workers=workers, saved_task_results_found=saved,
                    command=reproduce_command(only, quick, seed))
        write_report(tmp, records, meta, pdf_notice=notice if pdf else None)
        tmp.chmod(0o755)  # mkdtemp makes it private; a report is meant to be read
        fault_point("report-written")
        _swap_in(tmp, out)
        (out / _LOCK).unlink(missing_ok=True)
    except OutChangedError:
        shutil.rmtree(sweeps, ignore_errors=True)  # the report is complete, kept beside --out
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            sweeps.rmdir()             # only if no sweep saved anything: those are kept to resume
        raise
    finally:
        os.close(lock)
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
    for dist in ("nablab", "numpy", "scipy", "matplotlib", "torch", "jinja2", "latex2mathml"):
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
        "commit": git_commit(Path(__file__).resolve().parents[2]),
        "load_errors": registry.load_errors(),
    }


def git_commit(folder: Path) -> dict | None:
    """The git commit checked out in ``folder`` and whether tracked files differ from it; None outside git."""
    import subprocess

    def git(*args):
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10)

    try:
        top = git("rev-parse", "--show-toplevel")    # an installed copy inside some other repository is not it
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != Path(folder).resolve():
            return None
        head = git("rev-parse", "--verify", "HEAD")
        if head.returncode != 0:
            return None
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):   # no git, or it hangs
        return None
    return {"id": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def write_report(folder: Path, records: list[dict], meta: dict,
                 pdf_notice: Callable[[str], None] | None = None) -> None:
    """Write ``index.html``, ``claims.json``, ``run.json`` and the marker into ``folder``; with
    ``pdf_notice``, also ``report.pdf`` (a failure to print is told to it, and the report kept)."""
    counts = {s: sum(r["status"] == s for r in records) for s in STATUSES}
    counts = {s: n for s, n in counts.items() if n}
    claims_json = [{k: r.get(k) for k in ("id", "seed", "source", "status", "reason", "computed", "seed_says",
                                          "figures", "alts", "summary", "seconds", "statement", "title",
                                          "command", "cross_checks", "slots", "grades")}
                   for r in records]
    (folder / "claims.json").write_text(
        json.dumps(claims_json, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    (folder / "run.json").write_text(
        json.dumps({**meta, "counts": counts}, indent=2) + "\n", encoding="utf-8")
    html = _render(folder, records, meta, counts)
    (folder / "index.html").write_text(html, encoding="utf-8")
    if pdf_notice is not None:
        from nablab.lab.pdf import print_pdf

        try:
            print_pdf(folder / "index.html", folder / "report.pdf")
        except RuntimeError as exc:
            (folder / "report.pdf").unlink(missing_ok=True)
            pdf_notice(f"no report.pdf: {exc}")
    # Last, so a folder with the marker is complete; it lists every file, so a file
    # someone adds later is known not to be the report's (and is never replaced).
    files = sorted(n for n in os.listdir(folder) if n not in (MARKER, _LOCK))
    (folder / MARKER).write_text(json.dumps({"written_by": "nablab reproduce", "files": files}, indent=1)
                                 + "\n", encoding="utf-8")


def _render(folder: Path, records: list[dict], meta: dict, counts: dict) -> str:
    from nablab.lab.render import render_page

    return render_page(folder, records, meta, counts)


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


def _check_parent(out: Path) -> None:
    """Refuse an ``out`` below a file (mkdir would fail with a confusing 'File exists')."""
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"--out {out}: {parent} is a file, not a folder")
            return


def _own_files(folder: Path) -> set[str] | None:
    """Names of the files the report in ``folder`` wrote; None if it holds no report."""
    try:
        text = (folder / MARKER).read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        files = set(json.loads(text)["files"])
    except (ValueError, KeyError, TypeError):  # a report from before the marker listed its files
        files = {n for n in os.listdir(folder) if n in _REPORT_FILES or (n.endswith(".png") and "--" in n)}
    return files | {MARKER, _LOCK}


def _not_ours(path: Path) -> list[str]:
    """What in the folder ``path`` no nablab report wrote: [] for an empty folder or a report alone."""
    entries = os.listdir(path)
    own = _own_files(path) if entries else set()
    if own is None:
        return sorted(entries)
    return sorted(e for e in entries if e not in own or not (path / e).is_file())


def _check_replaceable(out: Path) -> None:
    """Refuse to replace anything that is not an earlier report (or an empty folder)."""
    if not os.path.lexists(out):
        return
    if not out.is_dir():
        raise FileExistsError(f"--out {out} exists and is not a folder")
    foreign = _not_ours(out)
    if not foreign:
        return
    if not (out / MARKER).exists():
        raise FileExistsError(f"--out {out} exists and is not a nablab report (no {MARKER} "
                              "file); choose another folder or remove it first")
    raise FileExistsError(f"--out {out} holds files the report did not write ({_names(foreign)}); "
                          "move them out of it or choose another folder")


def _names(names: list[str], most: int = 5) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _build_folder(out: Path) -> tuple[Path, int]:
    """A new ``.OUT.tmp-*`` folder beside ``out`` and an open, locked file inside it.

    The lock lasts as long as this process (the kernel drops it when the process
    dies, however it dies), which is how a later run tells a folder being built
    from one a killed run left behind.
    """
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        # Locked under another name first: whoever finds the lock file finds it locked.
        fd, path = tempfile.mkstemp(dir=tmp, prefix=f"{_LOCK}.")
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.replace(path, tmp / _LOCK)
        except BaseException:
            os.close(fd)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fault_point("build-folder-made")
    return tmp, fd


def _abandoned(folder: Path) -> bool:
    """Whether ``folder`` (a ``.OUT.tmp-*`` folder) belongs to no live run."""
    if fcntl is None:
        return False
    try:
        fd = os.open(folder / _LOCK, os.O_RDWR)
    except FileNotFoundError:
        # Killed before its lock was in place: nothing else in it, and over a minute old.
        with contextlib.suppress(OSError):
            return (all(n.startswith(f"{_LOCK}.") for n in os.listdir(folder))
                    and time.time() - folder.stat().st_mtime > 60)
        return False
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:  # held: its run is alive
        return False
    finally:
        os.close(fd)


def _recover(out: Path, notice: Callable[[str], None]) -> None:
    """Clean up after runs that were killed: put back a report moved aside, remove their folders."""
    if not out.parent.is_dir():
        return
    tmp_prefix, old_prefix = f".{out.name}.tmp-", f".{out.name}.old-"
    entries = sorted(out.parent.iterdir())
    for old in (e for e in entries if e.name.startswith(old_prefix)):
        tmp = out.parent / (tmp_prefix + old.name[len(old_prefix):])
        if tmp.is_dir() and not _abandoned(tmp):
            continue                                   # its run is swapping right now
        if not os.path.lexists(out):
            os.rename(old, out)
            notice(f"restored the previous report {out} (a run was killed while replacing it)")
        elif _change(old) is None and _change(out) is None:
            shutil.rmtree(old, ignore_errors=True)     # the swap had finished: an old copy
        else:
            notice(f"note: {old} holds an earlier report that a killed run moved aside; "
                   f"{out} has been replaced since, so it was left for you to check")
    for tmp in (e for e in entries if e.name.startswith(tmp_prefix) and e.is_dir()):
        if _abandoned(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace ``out`` by ``tmp`` with two renames, unless ``out`` now holds files nablab did not write.

    ``out`` is moved aside first and then checked, so a file written into it up to
    the last moment is seen; it is then put back untouched and the new report is
    kept beside it (:class:`OutChangedError`). A run killed between the renames
    leaves the old report as ``.OUT.old-*``; the next run puts it back.
    """
    backup = out.parent / f".{out.name}.old-{tmp.name.rsplit('.tmp-', 1)[1]}"
    fault_point("swap-start")
    try:
        os.rename(out, backup)
        moved = True
    except FileNotFoundError:
        moved = False
    try:
        fault_point("swap-between-renames")
        change = _change(backup) if moved else None
        if change is None:
            try:
                os.rename(tmp, out)
            except OSError:
                if not os.path.lexists(out):   # a failure, not something new at out
                    raise
                change = _change(out) or "another run wrote a report there"
            else:
                fault_point("swap-done")
                if moved:
                    shutil.rmtree(backup, ignore_errors=True)
                return
        previous = ""
        if moved:
            if not os.path.lexists(out):
                os.rename(backup, out)
            else:  # a new folder took its place between the renames: keep both in sight
                previous = f"; the report that was there is in {_keep_aside(backup, out, 'previous')}"
        aside = _keep_aside(tmp, out, "new")
        raise OutChangedError(f"--out {out} changed during the run: {change}. Nothing in it was touched"
                              f"{previous}; the new report is in {aside}")
    except BaseException:
        if moved and os.path.lexists(backup) and not os.path.lexists(out):
            os.rename(backup, out)          # failed or interrupted (Ctrl-C) between the renames
        raise


def _change(path: Path) -> str | None:
    """Why ``path`` may not be replaced by a report, or None if it may."""
    if path.is_symlink() or not path.is_dir():
        return "it is no longer a folder"
    foreign = _not_ours(path)
    return f"it now holds {_names(foreign)}, which nablab did not write" if foreign else None


def _keep_aside(folder: Path, out: Path, label: str) -> Path:
    """Move a report ``folder`` to a new visible folder ``OUT.LABEL`` (or ``OUT.LABEL-2``, ...)."""
    for i in itertools.count(1):
        aside = out.parent / (f"{out.name}.{label}" if i == 1 else f"{out.name}.{label}-{i}")
        try:
            aside.mkdir()   # claims the name; the rename below replaces this empty folder
        except FileExistsError:
            continue
        os.rename(folder, aside)
        (aside / _LOCK).unlink(missing_ok=True)
        return aside
    raise AssertionError("unreachable")
