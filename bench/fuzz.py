"""Mutation fuzzing of every input surface (issue 16): DSL source, task files, production
sets, CSV, NumPy and .ts data files, library entries (index and weights), saved models
and search checkpoints (the file's bytes, and its JSON record as text). Each input either
loads or raises a `NeurosymError` whose message names the file;
anything else is a crash (saved as a small reproducer in bench/fuzz_crashes/), and an
input that takes more than 2 s is slow.

    python bench/fuzz.py                          # 20,000 inputs per surface, seed 0
    python bench/fuzz.py --surfaces dsl task --n 2000 --seed 1

Mutations: deleting, repeating or swapping a span, inserting a token of the input's own
vocabulary or a hostile value (-1, 0, inf, nan, 1e309, a 20-digit integer, an empty
string, a list, deep brackets), flipping a byte, and splicing two inputs. Half the
mutants of a settings file (task, production set) set one key of the settings schema,
in its table, to a value of a random TOML kind (text, number, boolean, date-time, array,
table), so that every key meets every kind.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neurosym.lang.errors import NeurosymError

ROOT = Path(__file__).resolve().parents[1]
CRASHES = Path(__file__).parent / "fuzz_crashes"
HOSTILE = ["-1", "0", "inf", "-inf", "nan", "1e309", "99999999999999999999", '""', "[]",
           "{}", "[[", "((((((((", "??", "\\", "->", "\x00", "é", "=", "\n", "[0:0]",
           "-0.5", "1.5", "true", '"x"']


@dataclass
class Tally:
    tried: int = 0
    accepted: int = 0
    clean: int = 0
    unnamed: int = 0  # a NeurosymError that does not name the file
    crashes: int = 0
    slow: int = 0
    kinds: Counter = field(default_factory=Counter)


def mutate(text: str, corpus: list[str], rng: random.Random) -> str:
    """One to three random edits of `text`."""
    tokens = re.findall(r"\w+|[^\w\s]|\s+", text) or [""]
    vocabulary = list({t for t in tokens if t.strip()}) + HOSTILE
    for _ in range(rng.randint(1, 3)):
        n = len(text)
        i, j = sorted(rng.randint(0, n) for _ in range(2))
        op = rng.randrange(6)
        if op == 0:
            text = text[:i] + text[j:]
        elif op == 1:
            text = text[:i] + rng.choice(vocabulary) + text[i:]
        elif op == 2:
            text = text[:j] + text[i:j] * rng.randint(2, 50) + text[j:]
        elif op == 3 and n:
            k = rng.randrange(n)
            text = text[:k] + chr(rng.randrange(32, 127)) + text[k + 1:]
        elif op == 4:
            other = rng.choice(corpus)
            a, b = sorted(rng.randint(0, len(other)) for _ in range(2))
            text = text[:i] + other[a:b] + text[j:]
        else:
            text = text[:i] + rng.choice(HOSTILE) * rng.randint(1, 300) + text[i:]
    return text


# one literal of every TOML kind: text, integer, float, boolean, the four date-times,
# array, inline table (and the empty ones)
KINDS = ['"x"', '""', "3", "-7", "0", "2.5", "-1e300", "inf", "nan", "true", "false",
         "1979-05-27T07:32:00Z", "1979-05-27T07:32:00", "1979-05-27", "07:32:00", "[1, 2]",
         '["a", "b"]', "[[1], [2]]", "[]", '{ a = 1 }', "{}", '[{ term = "??" }]']


def _schemas(text: str) -> dict[str, list[str]]:
    """The keys a TOML table of this kind of file may hold, by table header ("" for the
    top level): a task file's or a production set's, from the one settings schema."""
    from neurosym import settings

    if "[[production]]" in text:
        return {"": list(settings.PRODUCTION_SET), "[[production]]": list(settings.PRODUCTION)}
    data = sorted({k for table in settings.DATA.values() for k in table})
    return {"": [*settings.HEAD, "data", "types", "train", "search"], "[data]": data,
            "[types]": ["input", "output"], "[train]": list(settings.TRAIN),
            "[search]": list(settings.SEARCH)}


def swap_kind(text: str, rng: random.Random) -> str:
    """A key of one of the file's tables, set to a value of a random TOML kind (the key's
    line replaced where it holds a one-line value, else the key added to the table)."""
    schemas = _schemas(text)
    table = rng.choice(list(schemas))
    key = rng.choice(schemas[table])
    value = rng.choice(KINDS)
    lines = text.split("\n")
    header = next((i for i, line in enumerate(lines) if line.strip() == table), None)
    if table and header is None:
        return text + f"\n{table}\n{key} = {value}\n"
    start = 0 if header is None else header + 1
    end = next((i for i in range(start, len(lines)) if lines[i].lstrip().startswith("[")
                and "=" not in lines[i]), len(lines))
    for i in range(start, end):
        name, eq, rest = lines[i].partition("=")
        if eq and name.strip() == key and rest.count("[") == rest.count("]"):
            lines[i] = f"{key} = {value}"
            return "\n".join(lines)
    lines.insert(start, f"{key} = {value}")
    return "\n".join(lines)


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(3)
        if op == 0 and out:
            out[rng.randrange(len(out))] = rng.randrange(256)
        elif op == 1 and out:
            cut = rng.randrange(len(out))
            out = out[:cut]
        else:
            at = rng.randrange(len(out) + 1)
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return bytes(out)


# ---- surfaces: (corpus, write the mutant, load it) -----------------------------------------

@dataclass
class Surface:
    name: str
    corpus: list[str]
    target: str  # the file name the mutant is written to (errors must name it)
    load: Callable[[Path], object]
    setup: Callable[[Path], None] = lambda folder: None
    binary: bool = False
    toml: bool = False  # a settings file: half its mutants swap a key's value's kind


def _dsl(path: Path) -> object:
    from neurosym.lang.load import check_file

    return check_file(path)


def _task(path: Path) -> object:
    from neurosym.tasks.spec import load_task

    return load_task(path)


def _productions(path: Path) -> object:
    from neurosym.search.productions import load_productions

    return load_productions(str(path), [(i, i + 1) for i in range(4)], series_length=50)


def _csv_setup(folder: Path) -> None:
    rows = ["a,b,c,label"] + [f"{i * 0.1:.1f},{1 - i * 0.1:.2f},{i % 3},{'xy'[i % 2]}"
                              for i in range(30)]
    (folder / "test.csv").write_text("\n".join(rows) + "\n")
    (folder / "t.toml").write_text('[data]\nsource = "files"\ntrain = "train.csv"\n'
                                   'test = "test.csv"\n[types]\ninput = "Vec[3]"\n'
                                   'output = "Vec[2]"\n')


# a task over the files `_csv_setup` writes (train.csv is its test file too)
_FILES_TASK = ('name = "files"\n[data]\nsource = "files"\ntrain = "test.csv"\n'
               'test = "test.csv"\ntarget = "label"\n[types]\ninput = "Vec[3]"\n'
               'output = "Vec[2]"\n[train]\nseed = 0\n[search]\ntime_limit = 10\n')


def _csv(path: Path) -> object:
    from neurosym.tasks.spec import load_task

    return load_task(path.parent / "t.toml")


TABLE = "when,island,mass,sex,species\n" + "".join(
    f"{2000 + i},{['Biscoe', 'Dream'][i % 2]},{'NA' if i == 5 else 3000 + 37 * i},"
    f"{['female', 'male', '?'][i % 3]},{'ab'[i % 3 == 1]}\n" for i in range(30))


def _init(path: Path) -> object:
    """`task init` on a table as people write them: a column to ignore, columns of names,
    missing values; then the task it wrote, loaded."""
    from neurosym.tasks.init import DataFiles, init_task

    files = DataFiles(str(path), None, ignore=("when",), test_fraction=0.25,
                      missing=("drop", "mean")[len(path.read_bytes()) % 2])
    return init_task("t", files, path.parent / "init.toml", force=True)


def _npz_setup(folder: Path) -> None:
    x = np.random.default_rng(0).normal(size=(30, 3))
    np.savez(folder / "test.npz", x=x, y=np.arange(30) % 2)
    (folder / "t.toml").write_text('[data]\nsource = "files"\ntrain = "train.npz"\n'
                                   'test = "test.npz"\n[types]\ninput = "Vec[3]"\n'
                                   'output = "Vec[2]"\n')


def _ts_setup(folder: Path) -> None:
    from neurosym.tasks.sources import aeon_data_dir

    shutil.copy(aeon_data_dir() / "UnitTest" / "UnitTest_TEST.ts", folder / "test.ts")
    (folder / "t.toml").write_text('[data]\nsource = "files"\ntrain = "train.ts"\n'
                                   'test = "test.ts"\n[types]\ninput = "List[Vec[1]]"\n'
                                   'output = "Vec[2]"\n')


def _library_setup(folder: Path) -> None:
    """A library of two entries, the second using the first, kept as the pristine copy."""
    from neurosym.interp.compiler import compile_term
    from neurosym.lang.checker import check_term
    from neurosym.lang.parser import parse_term, parse_type
    from neurosym.library.store import Library

    source = folder / "library_src"
    if source.exists():
        return
    lib = Library(source)
    for name, text in (("base", "??"), ("top", "\\x -> add (lib.base x) (affine x)")):
        term = parse_term(text)
        module = compile_term(term, check_term(term, parse_type("Vec[3] -> Float"),
                                               library=lib), library=lib)
        lib.save(name, text, "Vec[3] -> Float", module)


def _library_loader(part: str) -> Callable[[Path], object]:
    """Load the library after replacing one of its files (`part`: the index, or the
    weights of the first entry) with the mutant."""

    def load(path: Path) -> object:
        import torch

        from neurosym.library.store import Library

        folder = path.parent / "library"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(path.parent / "library_src", folder)
        target = folder / part if part == "index.sqlite" else \
            sorted(folder.rglob("*.safetensors"))[0]
        shutil.copy(path, target)
        lib = Library(folder)
        for entry in lib.entries():
            module, _ = lib.module(entry.name)
            module(torch.zeros(2, 3))
        lib.verify()
        return lib

    return load


def _model_setup(folder: Path) -> None:
    import neurosym

    model = folder / "model_src"
    if not model.exists():
        neurosym.run_file(ROOT / "dsl/basic_motions.ns", "basic_motions", epochs=1).save(model)


def _model_loader(part: str) -> Callable[[Path], object]:
    def load(path: Path) -> object:
        from neurosym.models import load as load_model

        folder = path.parent / "model"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(path.parent / "model_src", folder)
        shutil.copy(path, folder / part)
        model = load_model(folder)
        model.predict(np.zeros((2, 10, 6)))
        return model

    return load


def _checkpoint_setup(folder: Path) -> None:
    """A checkpoint of a short A* search on planted_compare, kept as the pristine copy."""
    src = folder / "search_src.ckpt"
    if not src.exists():
        from neurosym.search import synthesize

        synthesize("planted_compare", checkpoint=src, max_nodes=12, time_limit=120, top_k=1,
                   cv_folds=0, final_epochs=1)


_RESUMING: dict = {}


def _resume(path: Path) -> object:
    """Load a checkpoint into a fresh search of planted_compare with the saved settings
    (what `synthesize --resume` does before it searches)."""
    from neurosym.search import checkpoint as ck
    from neurosym.search.algorithms import Budget, Run
    from neurosym.search.graph import ProgramGraph
    from neurosym.search.scoring import NodeSettings, Scorer
    from neurosym.search.synthesis import (
        NeuralGraph,
        node_training,
        production_set,
        resolve_config,
    )
    from neurosym.tasks.spec import load_task

    if not _RESUMING:
        task = load_task("planted_compare")
        config = resolve_config(task, max_nodes=12, time_limit=120, top_k=1, cv_folds=0,
                                final_epochs=1)
        pset = production_set(task)
        _RESUMING.update(task=task, config=config, identity=ck.fingerprint(
            task, ck.settings_of(config), [f"{p.text} {p.cost}" for p in pset.productions]),
            programs=ProgramGraph(task.input_type, task.output_type, pset, config.max_depth),
            settings=NodeSettings(node_training(task, config)))
    r = _RESUMING
    scorer = Scorer(r["task"], r["settings"])
    search = Run(NeuralGraph(r["programs"], scorer, 0.05, 1.0), Budget())
    ck.load(path, search, scorer, r["programs"], r["identity"])
    return search


def _checkpoint_record(path: Path) -> object:
    """The JSON record mutated as text, put back beside the pristine tensors."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path.parent / "search_src.ckpt"), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    target = path.parent / "search.ckpt"
    text = path.read_bytes().decode("utf-8", "replace")
    save_file(tensors, str(target), metadata={"neurosym_search": text})
    try:
        return _resume(target)
    except NeurosymError as err:  # the mutant is named as search.ckpt: say its name too
        raise type(err)(f"{path.name}: {err}") from None


def surfaces(folder: Path) -> list[Surface]:
    texts = lambda paths: [p.read_text() for p in paths]  # noqa: E731
    # every kind of source: planted, aeon (UnitTest, small), digits, and files
    planted = sorted((ROOT / "tasks").glob("planted_*.toml")) + [
        ROOT / "tasks" / "unit_test.toml", ROOT / "tasks" / "digit_count_3.toml"]
    _model_setup(folder)
    _library_setup(folder)
    model_src = folder / "model_src"
    library_src = folder / "library_src"
    _checkpoint_setup(folder)
    from safetensors import safe_open

    with safe_open(str(folder / "search_src.ckpt"), framework="pt") as f:
        record = f.metadata()["neurosym_search"]
    from neurosym.tasks.sources import aeon_data_dir

    ts = (aeon_data_dir() / "UnitTest" / "UnitTest_TRAIN.ts").read_text()
    csv_rows = ["a,b,c,label"] + [f"{i * 0.3:.1f},{i % 5},{-i},{'xy'[i % 2]}"
                                  for i in range(40)]
    x = np.random.default_rng(1).normal(size=(40, 3))
    import io

    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=np.arange(40) % 2)
    return [
        Surface("dsl", texts(sorted((ROOT / "dsl").glob("*.ns"))), "fuzz.ns", _dsl),
        Surface("task", texts(planted) + [_FILES_TASK], "fuzz_task.toml", _task, _csv_setup,
                toml=True),
        Surface("productions", texts(sorted((ROOT / "dsl/search").glob("*.toml"))),
                "fuzz_set.toml", _productions, toml=True),
        Surface("csv", ["\n".join(csv_rows) + "\n"], "train.csv", _csv, _csv_setup),
        Surface("csv table", [TABLE], "table.csv", _init),
        Surface("npz", [buffer.getvalue().decode("latin-1")], "train.npz", _csv, _npz_setup,
                binary=True),
        Surface("ts", [ts], "train.ts", _csv, _ts_setup),
        Surface("library index", [(library_src / "index.sqlite").read_bytes().decode("latin-1")],
                "index.sqlite", _library_loader("index.sqlite"), binary=True),
        Surface("library weights", [sorted(library_src.rglob("*.safetensors"))[0].read_bytes()
                                    .decode("latin-1")], "entry.safetensors",
                _library_loader("weights"), binary=True),
        Surface("model.json", [(model_src / "model.json").read_text()], "model.json",
                _model_loader("model.json")),
        Surface("program.ns", [(model_src / "program.ns").read_text()], "program.ns",
                _model_loader("program.ns")),
        Surface("weights", [(model_src / "weights.safetensors").read_bytes().decode("latin-1")],
                "weights.safetensors", _model_loader("weights.safetensors"), binary=True),
        Surface("checkpoint", [(folder / "search_src.ckpt").read_bytes().decode("latin-1")],
                "search.ckpt", _resume, binary=True),
        Surface("checkpoint json", [record], "search.json", _checkpoint_record),
    ]


def campaign(surface: Surface, n: int, seed: int, folder: Path) -> Tally:
    rng = random.Random(seed)
    tally = Tally()
    surface.setup(folder)
    path = folder / surface.target
    for _ in range(n):
        base = rng.choice(surface.corpus)
        if surface.binary:
            data = mutate_bytes(base.encode("latin-1"), rng)
            path.write_bytes(data)
        else:
            swap = surface.toml and rng.random() < 0.5  # half of a TOML file's mutants
            mutant = swap_kind(base, rng) if swap else mutate(base, surface.corpus, rng)
            data = mutant.encode("utf-8", "surrogatepass")
            path.write_bytes(data)
        tally.tried += 1
        start = time.perf_counter()
        try:
            surface.load(path)
            tally.accepted += 1
        except NeurosymError as err:
            message = err.format()
            if surface.target in message or str(path.parent) in message:
                tally.clean += 1
            else:
                tally.unnamed += 1
                tally.kinds[f"unnamed: {message.splitlines()[0][:90]}"] += 1
        except RecursionError:
            tally.crashes += 1
            _save(surface, data, "RecursionError")
        except Exception as err:  # noqa: BLE001  (a crash: counted and kept)
            tally.crashes += 1
            kind = f"{type(err).__name__}: {str(err)[:80]}"
            tally.kinds[kind] += 1
            _save(surface, data, traceback.format_exc(limit=-3))
        if time.perf_counter() - start > 2.0:
            tally.slow += 1
            _save(surface, data, "slow")
    return tally


def _save(surface: Surface, data: bytes, why: str) -> None:
    CRASHES.mkdir(exist_ok=True)
    digest = hashlib.sha256(data).hexdigest()[:12]
    (CRASHES / f"{surface.name}-{digest}-{Path(surface.target).name}").write_bytes(data)
    (CRASHES / f"{surface.name}-{digest}.why.txt").write_text(why)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="inputs per surface")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--surfaces", nargs="*", default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        chosen = [s for s in surfaces(folder) if not args.surfaces or s.name in args.surfaces]
        print(f"{'surface':16} {'tried':>7} {'accepted':>9} {'clean':>7} {'no file':>8} "
              f"{'crashes':>8} {'slow':>5} {'seconds':>8}", flush=True)
        for surface in chosen:
            start = time.perf_counter()
            t = campaign(surface, args.n, args.seed, folder)
            print(f"{surface.name:16} {t.tried:7} {t.accepted:9} {t.clean:7} {t.unnamed:8} "
                  f"{t.crashes:8} {t.slow:5} {time.perf_counter() - start:8.0f}", flush=True)
            for kind, count in t.kinds.most_common(5):
                print(f"    {count:5}  {kind}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
