"""``nablab reproduce``, ``nablab grade`` and ``nablab lab list|show|run``: the lab's commands.

The lab is imported inside each command, so the other commands start without it.

>>> _one_line("A short\\nsummary.")
'A short summary.'
"""

from __future__ import annotations

import difflib
import json
import os
import textwrap
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich import box
from rich.markup import escape as rich_escape
from rich.table import Table
from rich.text import Text

from nablab.cli._common import STATUS_STYLE, console, err_console, fail, os_reason
from nablab.cli._progress import ClaimProgress, ReproduceProgress, previous_seconds

_SCHEDULER = typer.Option(
    "local", "--scheduler",
    help="Where sweeps run: local (process pool), local-dask (a Dask LocalCluster), "
         "tcp://HOST:PORT (a Dask scheduler) or serial (this process).")
_WORKERS = typer.Option(None, "--workers", min=1,
                        help="Workers for local and local-dask (default: one per core).")



def _interrupted(saved: Path) -> None:
    """Say what an interrupted run kept, then exit with the status of Ctrl-C."""
    kept = saved.is_dir() and any(saved.rglob("*.npz"))
    err_console.print("interrupted" + (f"; finished sweep tasks are saved in {saved}, and the same "
                                       "command resumes from them" if kept else ""),
                      markup=False, highlight=False)
    raise typer.Exit(130)



def _one_line(text: str, width: int = 80) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis.

    >>> _one_line("A short\\nsummary.")
    'A short summary.'
    >>> _one_line("x" * 100)[-3:], len(_one_line("x" * 100))
    ('xx…', 80)
    """
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width - 1].rstrip() + "…"


def reproduce(
    out: Path = typer.Option(..., "--out", "-o", help="Report folder (replaced atomically)."),
    only: Optional[str] = typer.Option(
        None, "--only", help="Claims to run, comma-separated: ids, globs ('optim.*'), prefixes (hyper.) or groups."),
    quick: bool = typer.Option(False, "--quick", help="Small sizes, for a fast check."),
    seed: int = typer.Option(0, "--seed", help="Base random seed."),
    scheduler: str = _SCHEDULER,
    workers: Optional[int] = _WORKERS,
    pdf: bool = typer.Option(False, "--pdf", help="Also print the page to OUT/report.pdf with a headless "
                                                  "Chromium (apt-get install chromium)."),
) -> None:
    """Run the lab's experiments and write OUT/index.html and OUT/claims.json.

    Example: nablab reproduce --out report/ --only 'autodiff.*,data.one-hot' --quick

    Sweeps run on a process pool, or on Dask with --scheduler local-dask or tcp://HOST:8786.

    An interrupted run resumes its sweeps when started again.
    """
    from nablab.lab.report import OutChangedError, sweep_folder
    from nablab.lab.report import reproduce as run_report

    patterns = _patterns(only)
    ids = _select_or_fail(patterns, "--only")
    if pdf:
        from nablab.lab.pdf import browser

        if browser() is None:  # said before any claim runs, not after minutes of work
            fail("--pdf needs Chromium to print the page, and none is installed (Debian: apt-get install "
                 "chromium); without --pdf, the page's print stylesheet prints well from any browser")
    start = time.perf_counter()
    try:
        with ReproduceProgress(console, ids, previous_seconds(out, quick)) as shown:
            records = run_report(out, only=patterns, quick=quick, seed=seed, progress=shown.claim_done,
                                 claim_progress=shown.claim_step, scheduler=scheduler, workers=workers,
                                 notice=lambda text: err_console.print(text, markup=False, highlight=False),
                                 pdf=pdf)
    except OutChangedError as exc:
        fail(str(exc), code=1)
    except (FileExistsError, NotADirectoryError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write the report to {out}: {os_reason(exc)}", code=1)
    except KeyboardInterrupt:
        _interrupted(sweep_folder(out))
    total = time.perf_counter() - start

    _print_summaries(records)
    counts = {}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    console.print(f"{len(records)} claims ({summary}); report: {Path(out) / 'index.html'}",
                  highlight=False, soft_wrap=True)
    _say_cross_checks_not_run(records)
    console.print(f"total time {total:.1f} s", highlight=False)
    if counts.get("error"):
        raise typer.Exit(1)


#: Lines of each claim's summary at the end of `reproduce` (the whole text is in the report).
SUMMARY_LINES = 2


def _print_summaries(records: list[dict]) -> None:
    """Each claim's status and time, then its summary over the full width, cut to SUMMARY_LINES lines."""
    from nablab.lab.mathtext import plain_math

    console.print("[bold]Claims[/]", highlight=False)
    width = max(console.width - 4, 30)
    for r in records:
        style = STATUS_STYLE.get(r["status"], "")
        console.print(f"[bold]{r['id']}[/]  [{style}]{r['status']}[/]  [dim]{r['seconds']:.2f} s[/]",
                      highlight=False, soft_wrap=True)
        if r["status"] != "not-implemented":
            for line in _wrap_cut(plain_math(r["summary"]), width, SUMMARY_LINES):
                console.print("    " + line, markup=False, highlight=False, soft_wrap=True)


def _wrap_cut(text: str, width: int, lines: int) -> list[str]:
    """``text`` wrapped at ``width``, at most ``lines`` lines, the last one ending in an ellipsis if cut.

    >>> _wrap_cut("one two three four five six", 9, 2)
    ['one two', 'three…']
    >>> _wrap_cut("short", 9, 2)
    ['short']
    """
    wrapped = textwrap.wrap(" ".join(text.split()), width)
    if len(wrapped) <= lines:
        return wrapped
    kept = wrapped[:lines]
    kept[-1] = kept[-1][:width - 1].rstrip() + "…"
    return kept


def _patterns(text: Optional[str]) -> list[str] | None:
    """Comma-separated ids or patterns, or None for every claim."""
    items = [s.strip() for s in (text or "").split(",") if s.strip()]
    return items or None


def _select_or_fail(patterns: list[str] | None, option: str) -> list[str]:
    """The claim ids ``patterns`` name (all without patterns); an unknown one fails naming ``option``."""
    from nablab.lab.claims import UnknownClaimError
    from nablab.lab.report import select_claims

    try:
        return select_claims(patterns)
    except UnknownClaimError as exc:
        fail(f"{option}: {exc}")


def _say_cross_checks_not_run(records: list[dict]) -> None:
    """One line for the claims whose cross-check against another library could not run."""
    reasons: dict[str, int] = {}
    for r in records:
        for state in set(r.get("cross_checks", {}).values()) - {"ran"}:
            reasons[state] = reasons.get(state, 0) + 1
    for state, n in reasons.items():
        hint = " (pip install 'nablab[torch]')" if "PyTorch" in state else ""
        console.print(f"cross-check {state} in {n} claim{'s' if n > 1 else ''}; their verdicts come from "
                      f"nablab alone{hint}", highlight=False)



def lab_list() -> None:
    """List every claim: its id, where the problem sets state it, and its title.

    Example: nablab lab list

    In a pipe it prints one tab-separated line per claim: id, problem sets and section, title.
    """
    from nablab.lab import CLAIMS, registry
    from nablab.lab.mathtext import plain_math

    fns = registry.registered()

    def title(claim):
        return plain_math(claim.title) + ("" if claim.id in fns else " (no experiment yet)")

    heading = f"{len(CLAIMS)} claims ({len(fns)} with an experiment)"
    if not console.is_terminal:
        # Whole lines for grep and cut: no borders, nothing cut, no colour (and tabs kept as tabs).
        typer.echo("\n".join([f"# {heading}", "claim\tproblem set\ttitle"]
                              + [f"{c.id}\t{c.seed}\t{title(c)}" for c in CLAIMS]))
    else:
        # Ids stay whole (they are what the other commands take); seeds and titles wrap,
        # the problem sets first: at 80 columns a title keeps about 35.
        id_w = max(len(c.id) for c in CLAIMS)
        seed_w = min(max(len(c.seed) for c in CLAIMS), max(10, (console.width - id_w - 6) // 4))
        table = Table(title=heading, box=box.SIMPLE_HEAD, show_edge=False)
        table.add_column("claim", no_wrap=True)
        table.add_column("problem set", width=seed_w)
        table.add_column("title")
        for c in CLAIMS:
            table.add_row(c.id, c.seed, Text(title(c), style="" if c.id in fns else "dim"))
        console.print(table)
    for module, tb in registry.load_errors().items():
        err_console.print(f"warning: {module} failed to import:\n{tb}", markup=False,
                          highlight=False)


def lab_show(claim_id: str = typer.Argument(..., help="Claim id, as shown by `nablab lab list`.")) -> None:
    """Print a claim's statement, answer slots and parameters.

    Example: nablab lab show cnn.conv-output-shape
    """
    from nablab.lab import CLAIMS_BY_ID
    from nablab.lab.claims import UnknownClaimError

    if claim_id not in CLAIMS_BY_ID:
        fail(str(UnknownClaimError([claim_id])))
    from nablab.lab.mathtext import plain_math

    claim = CLAIMS_BY_ID[claim_id]
    console.print(f"[bold]{claim.id}[/]: " + rich_escape(plain_math(claim.title)), highlight=False)
    console.print(f"{claim.source}", style="dim", highlight=False)
    console.print(plain_math(claim.statement), markup=False, highlight=False)
    if claim.slots:
        table = Table(title="Answer slots")
        table.add_column("slot", no_wrap=True)
        table.add_column("type and rule", overflow="fold")
        table.add_column("what it is", overflow="fold")
        for name, slot in claim.slots.items():
            table.add_row(name, slot.describe(), Text(plain_math(slot.help)))
        console.print(table)
    else:
        console.print("No answer slots: this claim is shown, not graded.", style="dim")
    if claim.params:
        table = Table(title="Parameters (--param name=value)")
        for column in ("name", "quick", "full", "what it is"):
            table.add_column(column, overflow="fold")
        for name, p in claim.params.items():
            table.add_row(name, repr(p.quick), repr(p.full), Text(plain_math(p.help)))
        console.print(table)


def grade(
    sheets: Optional[List[Path]] = typer.Argument(None, help="Answer sheets (TOML)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o",
                                       help="Folder for grades.json and index.html (default: grades)."),
    as_json: bool = typer.Option(False, "--json", help="Print the grades as JSON."),
    template: bool = typer.Option(False, "--template", help="Write a blank sheet instead of grading."),
    claims: Optional[str] = typer.Option(
        None, "--claims", help="With --template: comma-separated claim ids, globs ('cnn.*') or prefixes."),
    quick: bool = typer.Option(False, "--quick", help="Small sizes for the computations."),
    seed: int = typer.Option(0, "--seed", help="Base random seed of the computations."),
    scheduler: str = _SCHEDULER,
    workers: Optional[int] = _WORKERS,
) -> None:
    """Grade answer sheets against what nablab computes, slot by slot.

    Example: nablab grade my-answers.toml classmate.toml --out grades/

    Each claim a sheet answers is computed once, however many sheets are graded.

    Start a sheet with: nablab grade --template --claims cnn.conv-output-shape > mine.toml
    """
    from nablab.lab.claims import CLAIMS_BY_ID
    from nablab.lab.grade import grade_sheets, write_grades
    from nablab.lab.sheets import SheetError, load_sheet
    from nablab.lab.sheets import template as blank_sheet
    from nablab.lab.sweep import open_executor

    if claims is not None and not template:
        fail("--claims chooses the claims of a blank sheet: use it with --template")
    if template:
        patterns = _patterns(claims)
        ids = _select_or_fail(patterns, "--claims") if patterns else None
        text = blank_sheet([CLAIMS_BY_ID[i] for i in ids] if ids else None)
        if out is None:
            typer.echo(text)
        else:
            if out.exists():
                fail(f"--out {out} exists; the template is written to a new file only")
            out.write_text(text + "\n", encoding="utf-8")
            console.print(f"blank sheet: {out}", highlight=False)
        return
    if not sheets:
        fail("give one or more answer sheets (TOML), or --template for a blank one")
    try:
        loaded = [load_sheet(path) for path in sheets]   # every sheet is checked before computing
    except SheetError as exc:
        fail(str(exc))
    with err_console.status("computing") as status, open_executor(scheduler, workers) as executor:
        grades = grade_sheets(loaded, quick=quick, seed=seed, executor=executor,
                              progress=lambda cid: status.update(f"computing {cid}"))
    folder = out if out is not None else Path("grades")
    try:
        write_grades(folder, grades)
    except (FileExistsError, OSError) as exc:
        fail(str(exc) if isinstance(exc, FileExistsError) else f"cannot write {folder}: {os_reason(exc)}")
    if as_json:
        typer.echo(json.dumps([g.as_json() for g in grades], indent=2, allow_nan=False))
        return
    styles = {"correct": "green", "wrong": "red", "unanswered": "dim"}
    for g in grades:
        correct, total = g.score
        console.print(f"[bold]{g.sheet.name}[/] ({g.sheet.path}): {correct} of {total} slots correct",
                      highlight=False)
        for claim_id, claim_grade in g.claims.items():
            if claim_grade.error:
                console.print(f"  {claim_id}: not graded: {claim_grade.error}", style="dim", highlight=False)
                continue
            for s in claim_grade.slots:
                console.print(f"  [{styles[s.outcome]}]{s.outcome:>10}[/]  {claim_id}.{s.text()}",
                              highlight=False)
    console.print(f"report: {folder / 'index.html'}", highlight=False)


def lab_run(
    claim_id: str = typer.Argument(..., help="Claim id, as shown by `nablab lab list`."),
    param: Optional[List[str]] = typer.Option(None, "--param", "-p",
                                              help="Override a parameter: key=value (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o",
                                       help="Folder for figures and result.json (default: runs/ID)."),
    quick: bool = typer.Option(False, "--quick", help="Small sizes, for a fast check."),
    seed: int = typer.Option(0, "--seed", help="Base random seed."),
    scheduler: str = _SCHEDULER,
    workers: Optional[int] = _WORKERS,
) -> None:
    """Run one experiment and print what it computed.

    Example: nablab lab run theory.gd-1d-divergence --param steps=50 --out runs/gd --quick

    Sweeps save their tasks' results in OUT/.sweeps until the run ends.

    An interrupted run resumes from them when started again with the same options.

    OUT must be new, empty or made by an earlier `nablab lab run`.
    """
    import shutil

    from nablab.lab import CLAIMS_BY_ID, registry
    from nablab.lab.claims import UnknownClaimError
    from nablab.lab.mathtext import plain_math
    from nablab.lab.registry import ParamError, parse_params, to_jsonable
    from nablab.lab.report import run_claim, use_agg
    from nablab.lab.sweep import open_executor

    if claim_id not in CLAIMS_BY_ID:
        fail(str(UnknownClaimError([claim_id])))
    fns = registry.registered()
    if claim_id not in fns:
        fail(f"claim {claim_id!r} has no experiment yet; claims with one: "
              f"{', '.join(sorted(fns)) or '(none)'}")
    try:
        params = parse_params(param)
    except ValueError as exc:
        fail(str(exc))
    _check_params(claim_id, params, registry.params_of(claim_id))
    folder = out if out is not None else Path("runs") / claim_id
    _make_run_folder(folder)
    use_agg()
    sweeps = folder / ".sweeps"
    try:
        with open_executor(scheduler, workers) as executor, ClaimProgress(console, claim_id) as shown:
            record, _ = run_claim(claim_id, folder, quick, seed, params, executor=executor,
                                  sweep_dir=sweeps, progress=shown.step)
    except ParamError as exc:
        fail(f"--param {exc}")
    except ValueError as exc:  # a bad --scheduler or --workers
        fail(str(exc))
    except KeyboardInterrupt:
        _interrupted(sweeps)
    if record["status"] != "error":
        shutil.rmtree(sweeps, ignore_errors=True)
    try:
        (folder / "result.json").write_text(
            json.dumps(to_jsonable(record), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {folder / 'result.json'}: {os_reason(exc)}", code=1)

    style = STATUS_STYLE.get(record["status"], "")
    console.print(f"[bold]{claim_id}[/] ({record['seed']}): [{style}]{record['status']}[/] "
                  f"in {record['seconds']:.2f} s", highlight=False)
    console.print(plain_math(record["summary"]), markup=False)
    if record["seed_says"]:
        console.print(f"answer sets say: {record['seed_says']}", markup=False)
    if record["computed"]:
        table = Table(title="Computed")
        table.add_column("key")
        table.add_column("value", overflow="fold")
        for k, v in record["computed"].items():
            table.add_row(str(k), v if isinstance(v, str) else json.dumps(v))
        console.print(table)
    for fig in record["figures"]:
        console.print(f"figure: {folder / fig}", highlight=False)
    if record["details"]:
        console.print(plain_math(record["details"]), markup=False, highlight=False)
    _say_cross_checks_not_run([record])
    console.print(f"result: {folder / 'result.json'}", highlight=False)
    if record["status"] == "error":
        raise typer.Exit(1)


#: A file in every folder `lab run` made; it writes into no other non-empty folder.
RUN_MARKER = ".nablab-run"


def _check_params(claim_id: str, params: dict, accepted: dict | None) -> None:
    """Refuse a --param the experiment does not read, listing those it does."""
    unknown = sorted(set(params) - set(accepted)) if accepted is not None else []
    if not unknown:
        return
    listing = "; ".join(f"{k} (default: {v})" for k, v in accepted.items())
    close = difflib.get_close_matches(unknown[0], list(accepted), n=1)
    fail(f"--param {unknown[0]}: {claim_id} has no parameter {unknown[0]!r}"
          + (f" (did you mean {close[0]!r}?)" if close else "")
          + (f". It accepts: {listing}" if accepted else ". It takes no parameters"))


def _made_by_lab_run(folder: Path) -> bool:
    """The marker, or (runs from before it existed) a result.json that `lab run` wrote."""
    if (folder / RUN_MARKER).is_file():
        return True
    try:
        result = json.loads((folder / "result.json").read_text(encoding="utf-8"))
        return str(result.get("command", "")).startswith("nablab lab run ")
    except (OSError, ValueError, AttributeError):
        return False


def _make_run_folder(folder: Path) -> None:
    """Create ``folder`` for `lab run`, or refuse one it did not make (its files would be overwritten)."""
    if os.path.lexists(folder):
        if not folder.is_dir():
            fail(f"--out {folder} exists and is not a folder")
        if any(folder.iterdir()) and not _made_by_lab_run(folder):
            fail(f"--out {folder} exists and was not made by nablab lab run (no {RUN_MARKER} file); "
                  "its result.json, figures and .sweeps would be overwritten: choose another folder "
                  "or remove it first")
    for parent in folder.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                fail(f"--out {folder}: {parent} is a file, not a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RUN_MARKER).write_text("made by nablab lab run: it may overwrite its own files here\n",
                                         encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write to --out {folder}: {os_reason(exc)}", code=1)


