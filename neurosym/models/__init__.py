"""A found program kept on disk: save and load it (artifact.py), see what it reads
(explain.py, plot.py), and ship it without neurosym (export.py: ONNX and torch.export;
python.py: one readable PyTorch file). commands.py: `neurosym predict | show | export`."""

from neurosym.models.artifact import Model, ModelError, from_trained, load

__all__ = ["Model", "ModelError", "from_trained", "load"]
