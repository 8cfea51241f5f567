"""`neurosym predict | show | export`: apply, explain and ship a saved model."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import click
from rich.markup import escape
from rich.text import Text

from neurosym.console import clean, echo_json, friendly_errors, out


@click.command()
@click.argument("model_dir", metavar="MODEL", type=click.Path(file_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Write here (.csv or .json) instead of printing CSV.")
@click.option("--proba", is_flag=True, help="Class probabilities, one column per class.")
@friendly_errors
def predict(model_dir: str, data: str, out_file: str | None, proba: bool) -> None:
    """Predictions of a saved model for DATA (any format a task reads; targets, if the file
    has them, are ignored), one per example: by row number, or by id for a long-format
    CSV."""
    from neurosym.models import load

    model = load(model_dir)
    found = model.read(data)
    labels = model.predict(found)
    key = "id" if found.ids else "row"  # a long-format CSV names its series
    rows = [{key: name, "prediction": clean(v) if not isinstance(v, str) else v}
            for name, v in zip(found.ids or range(len(found)), labels.tolist(), strict=True)]
    if proba:
        probabilities = model.predict_proba(found)
        names = model.classes or [str(i) for i in range(probabilities.shape[1])]
        for row, p in zip(rows, probabilities.tolist(), strict=True):
            row.update({f"p_{name}": clean(v) for name, v in zip(names, p, strict=True)})
    if out_file and out_file.endswith(".json"):
        Path(out_file).write_text(json.dumps(rows, indent=2) + "\n")
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [key])
    writer.writeheader()
    writer.writerows(rows)
    if out_file:
        Path(out_file).write_text(buffer.getvalue())
    else:
        click.echo(buffer.getvalue(), nl=False)


@click.command()
@click.argument("model_dir", metavar="MODEL", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the model's record as JSON.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Also draw what the program reads into this PNG (needs matplotlib).")
@click.option("--data", type=click.Path(dir_okay=False), default=None,
              help="Labelled data to draw over (default: the model's task's training data).")
@friendly_errors
def show(model_dir: str, as_json: bool, plot: str | None, data: str | None) -> None:
    """A saved model: its program, scores, and what each learned part reads."""
    from neurosym.evaluate import in_units
    from neurosym.metrics import baseline_name
    from neurosym.models import load
    from neurosym.models.explain import describe
    from neurosym.search.display import THEME, highlight

    model = load(model_dir)
    parts = describe(model)
    if plot:
        from neurosym.models.plot import plot_data, plot_model

        plot_model(model, *plot_data(model, data), Path(plot))
        click.echo(f"plot written to {plot}", err=True)
    if as_json:
        echo_json({**model.record, "parts": parts})
        return
    console = out()
    console.push_theme(THEME)
    r = model.record
    console.print(Text.assemble(("program  ", "bold"), highlight(Text(model.program))))
    console.print(f"type     {escape(r['input_type'])} -> {escape(r['output_type'])}   "
                  f"task {escape(str(r.get('task')))}   loss {r['loss']}")
    scores = r.get("scores") or {}
    if scores:
        baseline = baseline_name(scores.get("metric", ""))
        console.print(f"scores   {scores.get('metric')}: train {scores['train']:.4f}  "
                      f"val {scores['val']:.4f}  test {scores['test']:.4f}  ({baseline} "
                      f"baseline {scores['baseline']:.4f})")
        if isinstance(scores.get("units"), int | float):
            console.print("         " + in_units(scores.get("metric", ""), scores["test"],
                                                 scores["baseline"], scores["units"]))
    if r.get("classes"):
        console.print(f"classes  {escape(', '.join(r['classes']))}")
    for c in r.get("library", []):
        console.print(f"library  {escape(c['definition'])} is lib.{escape(c['entry'])} "
                      f"(weights sha256 {c['sha256'][:12]})")
    for part in parts:
        console.print(f"  {escape(part['part'])}: {escape(part['reads'])}")
        for line in part.get("sketch", []):
            console.print(f"      {line}")


@click.command("export")
@click.argument("model_dir", metavar="MODEL", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["onnx", "torch", "python"]),
              required=True, help="onnx (runs with onnxruntime), torch (a torch.export "
              ".pt2) or python (one readable PyTorch file, weights beside it).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Output file (default: MODEL/model.onnx, MODEL/model.pt2 or "
              "MODEL/program.py).")
@friendly_errors
def export_command(model_dir: str, fmt: str, out_file: str | None) -> None:
    """Export a saved model to run without neurosym."""
    from neurosym.models import load

    model = load(model_dir)
    default = {"onnx": "model.onnx", "torch": "model.pt2", "python": "program.py"}[fmt]
    path = Path(out_file) if out_file else Path(model_dir) / default
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "python":
        from neurosym.models.python import export_python

        export_python(model, path, weights_name=f"{path.stem}.safetensors")
        click.echo(f"wrote {path} and {path.stem}.safetensors beside it")
        return
    from neurosym.models.export import export

    gap = export(model, fmt, path)
    click.echo(f"wrote {path} ({fmt}); largest difference from the model on example "
               f"inputs: {gap:.2g}")
