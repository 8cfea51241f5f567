"""How a search looks to a person: a live progress panel while it runs, the programs found
(DSL syntax, highlighted) with their scores beside the majority baseline, and a .ns file
that `neurosym check` and `neurosym run` accept."""

from __future__ import annotations

import datetime
from pathlib import Path

from rich.console import Console, Group
from rich.highlighter import RegexHighlighter
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.theme import Theme

from neurosym.lang import ast
from neurosym.lang.printer import show_def
from neurosym.lang.types import Arrow
from neurosym.metrics import baseline_name, trivial_words
from neurosym.search.algorithms import Progress
from neurosym.tasks.spec import Task


class DSLHighlighter(RegexHighlighter):
    base_style = "dsl."
    highlights = [
        r"(?P<keyword>\b(def|let|in)\b|\\|->)",
        r"(?P<hole>\?\?)",
        r"(?P<lib>\blib\.[A-Za-z0-9_@]+)",
        r"(?P<type>\b[A-Z][A-Za-z]*\b)",
        r"(?P<number>(?<![\w.])-?[0-9]+(\.[0-9]+)?\b)",
    ]


THEME = Theme({"dsl.keyword": "bold magenta", "dsl.hole": "bold red", "dsl.lib": "bold green",
               "dsl.type": "cyan", "dsl.number": "yellow"})
highlight = DSLHighlighter()


class SearchDisplay:
    """A rich Live panel fed by the search's progress callback."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.console, self.enabled = console, enabled
        self._live: Live | None = None

    def __enter__(self) -> SearchDisplay:
        if self.enabled:
            self.console.push_theme(THEME)
            self._live = Live(Text("starting search…"), console=self.console,
                              refresh_per_second=4, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self.console.pop_theme()

    def update(self, p: Progress) -> None:
        if self._live is None:
            return
        grid = Table.grid(padding=(0, 2))
        grid.add_row("elapsed", f"{p.elapsed:6.1f} s", "expanded", str(p.expanded),
                     "trained", str(p.trained), "frontier", str(p.frontier))
        best = highlight(Text(p.best_text or "(no complete program yet)"))
        self._live.update(Group(grid, Text.assemble("best f ", f"{p.best_f:.4f}  ", best)))


def trivial(metric: str) -> str:
    return f"    {trivial_words(metric)}: the search did not find a useful program"


def learned_parts(model) -> list[dict]:
    """What the program's learned parts that can say so (`explain()`) learned."""
    return [m.explain() for m in model.modules() if hasattr(m, "explain")]


def print_result(result, task: Task, console: Console) -> None:
    console.push_theme(THEME)
    try:
        for rank, prog in enumerate(result.programs, 1):
            ev = prog.evaluation
            console.print(Text.assemble((f"#{rank}  ", "bold"), highlight(Text(prog.printed))))
            held_out = (f"val {ev.val:.4f}" if prog.cv is None else
                        f"{prog.cv.folds}-fold CV{_times(prog.cv.repeats)} {prog.cv.mean:.4f} "
                        f"± {prog.cv.std:.4f}")
            console.print(f"    {ev.metric}: {held_out}  test {ev.test:.4f}   "
                          f"({baseline_name(ev.metric)} baseline {ev.baseline:.4f})   "
                          f"size {prog.size}, "
                          f"cost {prog.cost:g}")
            if prog.cv is not None:
                console.print("    (cross-validated on train + val, then refit on both)")
            if units := ev.in_units():
                console.print(f"    {units}")
            for part in learned_parts(prog.model):
                lines = part["sketch"]
                console.print(f"    {part['part']}: " + ("\n      ".join([""] + lines)
                                                        if len(lines) > 1 else lines[0]))
            if ev.trivial:
                console.print(trivial(ev.metric), style="bold yellow")
            if ev.per_class_f1:
                f1 = " ".join(f"{v:.2f}" for v in ev.per_class_f1)
                console.print(f"    per-class F1 (test): {f1}")
        for text, why in result.dropped:
            console.print(Text.assemble(("not retrained: ", "yellow"), highlight(Text(text)),
                                        f"  ({why})"))
        s = result.stats
        console.print(escape(
            f"[{s.algorithm}] {s.expanded} expanded, {s.trained} trained, {s.seconds:.1f} s, "
            f"stopped by {s.stopped_by}" + (" (interrupted: best so far)" if s.interrupted
                                            else "")
            + (f"; the worker pool was lost {result.restarts} time(s) and started again, "
               "its nodes trained again" if result.restarts else "")), style="dim")
    finally:
        console.pop_theme()


def _times(repeats: int) -> str:
    return f" x{repeats}" if repeats > 1 else ""


def no_program(result) -> str:
    """Why a search returned no program, and what to change."""
    if result.dropped:
        text, why = result.dropped[0]
        return (f"the search found no program: all {len(result.dropped)} finalist(s) failed "
                f"to train (first: {text}: {why})")
    s = result.stats
    return (f"the search found no program: {s.trained} node(s) trained before it stopped "
            f"({s.stopped_by}), none complete; raise --time-limit or --max-nodes")


def result_json(result, task: Task) -> dict:
    s = result.stats
    return {
        "task": task.name,
        "programs": [{"program": p.printed, "structure": p.text, "size": p.size,
                      "cost": p.cost, "f": p.f,
                      "final_f": p.final_f, "found_at": p.found_at,
                      "cv": None if p.cv is None else {
                          **p.cv.summary(), "refit_epochs": p.evaluation.epochs},
                      "learned": learned_parts(p.model),
                      **p.evaluation.as_dict()}
                     for p in result.programs],
        "dropped": [{"program": text, "error": why} for text, why in result.dropped],
        "stats": {"algorithm": s.algorithm, "expanded": s.expanded, "trained": s.trained,
                  "seconds": s.seconds, "frontier": s.frontier, "stopped_by": s.stopped_by,
                  "interrupted": s.interrupted, "worker_restarts": result.restarts},
    }


def save_program(prog, task: Task, path: str | Path) -> None:
    """Write the program as `def main : IN -> OUT = ...` with where it came from."""
    ev = prog.evaluation
    held_out = f"val {ev.val:.4f}" if prog.cv is None else f"CV {prog.cv.mean:.4f}"
    header = (f"# Found by `neurosym synthesize {task.name}` on "
              f"{datetime.date.today().isoformat()}: {ev.metric} {held_out}, "
              f"test {ev.test:.4f} ({baseline_name(ev.metric)} baseline {ev.baseline:.4f}).\n")
    definition = ast.Def("main", Arrow(task.input_type, task.output_type),
                         prog.model.learned_term())
    Path(path).write_text(header + show_def(definition) + "\n")
