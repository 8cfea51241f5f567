"""neurosym: learn readable typed programs with neural parts.

    import neurosym
    result = neurosym.run_file("dsl/basic_motions.ns", "basic_motions")
    found = neurosym.synthesize("basic_motions", time_limit=120)
"""

from neurosym.api import RunResult, run_file
from neurosym.lang.checker import check_program, check_term
from neurosym.lang.errors import NeurosymError
from neurosym.lang.load import check_file, check_source
from neurosym.lang.parser import parse_program, parse_term, parse_type
from neurosym.lang.printer import show, show_program
from neurosym.tasks.spec import Task, load_task


def synthesize(task, **options):
    """NEAR search for `task`; see `neurosym.search.synthesize` for the options."""
    from neurosym.search import synthesize as run

    return run(task, **options)


__all__ = [
    "NeurosymError", "RunResult", "Task", "check_file", "check_program", "check_source",
    "check_term", "load_task", "parse_program", "parse_term", "parse_type", "run_file", "show",
    "show_program", "synthesize",
]
