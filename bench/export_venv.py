"""The Python export in a fresh virtual environment that has only torch and safetensors
(issue 14): train a program, save it, export it as Python, run the file there on the test
split, and print the largest difference from neurosym's own outputs.

    python bench/export_venv.py                       # gunpoint, venv in a temp folder
    python bench/export_venv.py --task basic_motions --program dsl/basic_motions.ns

On this machine `pip install torch==2.13.0` reads the CPU build from local disk; elsewhere
it downloads it (about 200 MB for the CPU wheel).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import torch

import neurosym
from neurosym.interp.values import Seq
from neurosym.models.python import export_python
from neurosym.train import predict

ROOT = Path(__file__).resolve().parents[1]
RUN = """
import sys, torch
sys.path.insert(0, sys.argv[1])
from program import Program
model = Program.load(sys.argv[1] + "/program.safetensors")
with torch.no_grad():
    torch.save(model(*torch.load(sys.argv[1] + "/inputs.pt")), sys.argv[1] + "/out.pt")
import importlib.util
print("neurosym importable:", importlib.util.find_spec("neurosym") is not None)
"""


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="gunpoint")
    parser.add_argument("--program", default=str(ROOT / "dsl/gunpoint.ns"))
    parser.add_argument("--torch", default="torch==2.13.0")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        result = neurosym.run_file(args.program, args.task, epochs=20)
        model = result.save(folder / "model")
        export_python(model, folder / "program.py")
        x = result.task.test.x
        torch.save((x.data, x.weights) if isinstance(x, Seq) else (x,), folder / "inputs.pt")
        start = time.perf_counter()
        venv.create(folder / "venv", with_pip=True)
        python = folder / "venv" / "bin" / "python"
        subprocess.run([python, "-m", "pip", "install", "-q", args.torch, "safetensors"],
                       check=True)
        built = time.perf_counter() - start
        listed = subprocess.run([python, "-m", "pip", "list", "--format=freeze"],
                                capture_output=True, text=True, check=True).stdout.split()
        ran = subprocess.run([python, "-c", RUN, str(folder)], capture_output=True, text=True,
                             cwd=folder,
                             check=True)
        gap = (torch.load(folder / "out.pt") - predict(result.model, x)).abs().max().item()
        print(f"venv built in {built:.0f} s with: {', '.join(listed)}")
        print(ran.stdout.strip())
        print(f"{args.task}: {model.program}")
        print(f"largest difference on {len(result.task.test)} test examples: {gap:.2g}")


if __name__ == "__main__":
    main(sys.argv[1:])
