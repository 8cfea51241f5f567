"""A found program kept on disk: save and load it (artifact.py), see what it reads
(explain.py, plot.py), and ship it without neurosym (export.py: ONNX and torch.export;
python.py: one readable PyTorch file). commands.py: `neurosym predict | show | export`.
Names are imported on first use: the commands must not import torch for `--help`."""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = ("Model", "ModelError", "from_trained", "load")


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module("neurosym.models.artifact"), name)
    raise AttributeError(f"module 'neurosym.models' has no attribute {name!r}")


__all__ = list(_NAMES)
