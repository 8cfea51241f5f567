"""neurosym: learn readable typed programs with neural parts.

    import neurosym
    result = neurosym.run_file("dsl/basic_motions.ns", "basic_motions")
    found = neurosym.synthesize("basic_motions", time_limit=120)
    found.save("my_model");  model = neurosym.load("my_model")

Names are imported on first use (PEP 562), so that `neurosym --help` does not pay for
importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "RunResult": "neurosym.api", "run_file": "neurosym.api",
    "check_program": "neurosym.lang.checker", "check_term": "neurosym.lang.checker",
    "NeurosymError": "neurosym.lang.errors",
    "check_file": "neurosym.lang.load", "check_source": "neurosym.lang.load",
    "parse_program": "neurosym.lang.parser", "parse_term": "neurosym.lang.parser",
    "parse_type": "neurosym.lang.parser",
    "show": "neurosym.lang.printer", "show_program": "neurosym.lang.printer",
    "Task": "neurosym.tasks.spec", "load_task": "neurosym.tasks.spec",
    "Model": "neurosym.models", "load": "neurosym.models",
}


def synthesize(task, **options):
    """NEAR search for `task`; see `neurosym.search.synthesize` for the options."""
    from neurosym.search import synthesize as run

    return run(task, **options)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'neurosym' has no attribute {name!r}")


__all__ = sorted([*_WHERE, "synthesize"])
