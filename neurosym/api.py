"""The Python API behind the CLI: check and run hand-written programs on tasks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from neurosym.evaluate import Evaluation, train_and_evaluate, train_config
from neurosym.interp.compiler import CompiledTerm, as_task_program, compile_program
from neurosym.lang.checker import Checked
from neurosym.lang.errors import DSLTypeError, TaskError, TypeMismatch
from neurosym.lang.load import check_file
from neurosym.lang.types import Arrow, Subst
from neurosym.tasks.spec import Task, load_task


@dataclass(frozen=True)
class RunResult:
    entry: str
    type: str
    parameters: int
    evaluation: Evaluation
    model: CompiledTerm
    task: Task | None = None

    def as_dict(self) -> dict:
        return {"entry": self.entry, "type": self.type, "parameters": self.parameters,
                **self.evaluation.as_dict()}

    def save(self, path: str | Path):
        """Save the trained program as a model directory (`neurosym.models`)."""
        from neurosym.models import from_trained

        model = from_trained(self.model, self.task, self.evaluation, entry=self.entry)
        model.save(path)
        return model


def entry_point(checked: Checked, task: Task, entry: str | None) -> str:
    """The definition to train; its type must be the task's `input -> output`."""
    program = checked.program
    name = entry or program.main.name
    if name not in checked.def_types:
        raise TaskError(f"no definition named '{name}' (have: {', '.join(checked.def_types)})")
    want = Arrow(task.input_type, task.output_type)
    try:
        Subst().unify(want, checked.def_types[name])
    except TypeMismatch:
        raise DSLTypeError(f"'{name}' has type {checked.def_types[name]}, but task "
                           f"'{task.name}' needs {want}", program.get(name).span) from None
    return name


def run_file(path: str | Path, task: str | Path | Task, entry: str | None = None,
             epochs: int | None = None, lr: float | None = None, seed: int | None = None,
             library=None, device: str = "cpu") -> RunResult:
    """Check `path`, train its entry definition on `task` (on `device`), score it on
    every split."""
    task = (load_task(task) if isinstance(task, str | Path) else task).to(device)
    checked = check_file(path, library)
    try:
        name = entry_point(checked, task, entry)
    except DSLTypeError as err:  # located in the user's file, with the definition shown
        raise err.located(Path(path).read_text(), str(path)) from None
    config = train_config(task, epochs=epochs, lr=lr, seed=seed)
    torch.manual_seed(config.seed)  # module initialisation is part of the run's seed
    model = as_task_program(compile_program(checked, library)[name].to(device))
    evaluation = train_and_evaluate(model, task, config)
    params = sum(p.numel() for p in model.parameters())
    return RunResult(name, str(checked.def_types[name]), params, evaluation, model, task)
