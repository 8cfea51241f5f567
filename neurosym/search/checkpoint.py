"""Checkpoints of an A* search, so that a long search survives a crash or a Ctrl-C.

One safetensors file: its tensors are the trained relaxations of the frontier nodes (the
warm starts of their children), and its metadata holds the rest as JSON: the frontier and
merged graph, every score, the best programs, the counters, the search settings and a hash
of the task's data. Nodes are stored as program text (with their cost and depths) and
rebuilt by parsing and checking it; nothing is unpickled. A state saved in the middle of
an expansion is stored as it was before that expansion, so a resumed search expands that
node again (its children's scores are kept, not trained again).

A checkpoint is refused, with the difference named, for other data, other settings, or
another production set; the time limit, node budget and worker count may change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from pathlib import Path

import torch

from neurosym.lang.errors import NeurosymError, SearchError
from neurosym.lang.parser import parse_term
from neurosym.search.algorithms import AStarState, Merged, Run
from neurosym.search.graph import Node, ProgramGraph
from neurosym.search.scoring import NodeScore, Scorer
from neurosym.tasks.spec import Task

FORMAT = 2  # 2: each node's parent (a node's family, for the finalists)
# may differ between the saved search and the resumed one
FREE_SETTINGS = {"time_limit", "max_nodes", "workers", "node_seconds", "anytime",
                 "final_share", "device"}


class CheckpointError(SearchError):
    """A checkpoint that cannot be read, or that belongs to another search."""


def fingerprint(task: Task, settings: dict, productions: list[str]) -> dict:
    """What a checkpoint must match: the data, the settings and the production set."""
    digest = hashlib.sha256()
    for split in (task.train, task.val):
        for t in (*_tensors(split.x), split.y):
            digest.update(t.detach().contiguous().cpu().numpy().tobytes())
    fixed = {k: v for k, v in settings.items() if k not in FREE_SETTINGS}
    return {"task": task.name, "type": f"{task.input_type} -> {task.output_type}",
            "data_sha256": digest.hexdigest(), "settings": fixed,
            "productions_sha256": hashlib.sha256("\n".join(productions).encode()).hexdigest()}


def _tensors(x) -> tuple[torch.Tensor, ...]:
    return (x.data, x.weights) if hasattr(x, "weights") else (x,)


def save(path: Path, search: Run, scorer: Scorer, identity: dict) -> bool:
    """Write the search's state to `path` atomically; False if there is nothing to save
    yet (the root not scored)."""
    from safetensors.torch import save as to_bytes

    from neurosym.library.files import write_atomic

    state = search.state
    if state is None:
        return False
    frontier, closed, cheapest = state.before_expansion()
    nodes: dict[str, Node] = {}
    for entry in frontier:
        nodes[entry[-1].text] = entry[-1]
    for table in (search.complete, search.partial):
        for _, node in table.values():
            nodes[node.text] = node
    for node in list(nodes.values()):  # and their ancestors
        while (node := node.parent) is not None and node.text not in nodes:
            nodes[node.text] = node
    tensors: dict[str, torch.Tensor] = {}
    for i, entry in enumerate(frontier):
        done = scorer.cache.get(entry[-1].text)
        for j, part in enumerate((done.states or ()) if done else ()):
            for name, value in (part or {}).items():
                tensors[f"{i}/{j}/{name}"] = value.detach().contiguous().clone()
    record = {
        "format": FORMAT, "identity": identity, "elapsed": search.elapsed(),
        "expanded": search.expanded, "evaluated": search.evaluated,
        "scores": search.scores, "found_at": search.found_at,
        "complete": {k: f for k, (f, _) in search.complete.items()},
        "partial": {k: f for k, (f, _) in search.partial.items()},
        "frontier": [[f, partial, cost, tie, node.text]
                     for f, partial, cost, tie, node in frontier],
        "tie": state.tie, "popped": state.popped, "closed": closed, "cheapest": cheapest,
        "nodes": {text: [n.cost, n.steps, n.depth, list(n.hole_depths),
                         n.parent.text if n.parent is not None else None]
                  for text, n in nodes.items()},
        "cache": {text: [s.h, s.val_loss, s.val_metric, s.seconds, s.error]
                  for text, s in scorer.cache.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, to_bytes(tensors, metadata={"neurosym_search": json.dumps(record)}),
                 CheckpointError)
    return True


def load(path: Path, search: Run, scorer: Scorer, programs: ProgramGraph,
         identity: dict) -> None:
    """Put the state saved in `path` into a new `search` and `scorer` (same task and
    settings, checked against `identity`); a damaged file changes neither."""
    record, tensors = _read(path)
    _check_identity(path, record.get("identity", {}), identity)
    try:
        state, scores, tables = _rebuild(record, tensors, search, programs)
        elapsed = float(record["elapsed"])
        expanded, evaluated = int(record["expanded"]), int(record["evaluated"])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, NeurosymError) as err:
        raise CheckpointError(f"{path} is damaged ({type(err).__name__}: "
                              f"{(str(err).splitlines() or [''])[0][:200]})") from None
    for text, score in scores.items():
        scorer._keep(text, score)
    search.state = state
    search.start = time.perf_counter() - elapsed
    search.expanded, search.evaluated = expanded, evaluated
    search.scores, search.found_at, search.complete, search.partial = tables
    search.frontier = len(state.frontier)


def _rebuild(record: dict, tensors: dict[str, torch.Tensor], search: Run,
             programs: ProgramGraph) -> tuple[AStarState, dict[str, NodeScore], tuple]:
    nodes = _nodes(record["nodes"], programs)
    states: dict[str, dict[int, dict[str, torch.Tensor]]] = {}
    frontier = []
    for i, (f, partial, cost, tie, text) in enumerate(record["frontier"]):
        frontier.append((float(f), bool(partial), float(cost), int(tie), nodes[text]))
        for key, value in tensors.items():
            if key.startswith(f"{i}/"):
                _, j, name = key.split("/", 2)
                states.setdefault(text, {}).setdefault(int(j), {})[name] = value
    scores = {}
    for text, (h, val_loss, metric, seconds, error) in record["cache"].items():
        parts = states.get(text)
        holes = len(nodes[text].hole_depths) if text in nodes else 0
        saved = tuple(parts.get(j) for j in range(holes)) if parts else None
        scores[text] = NodeScore(float(h), float(val_loss), float(metric), float(seconds),
                                 saved, error)
    merged = Merged(search.graph)
    merged.closed = {k: float(v) for k, v in record["closed"].items()}
    merged.cheapest = {k: float(v) for k, v in record["cheapest"].items()}
    state = AStarState(merged, sorted(frontier, key=lambda e: e[:4]), int(record["tie"]),
                       int(record["popped"]))
    tables = ({k: float(v) for k, v in record["scores"].items()},
              {k: float(v) for k, v in record["found_at"].items()},
              {k: (float(f), nodes[k]) for k, f in record["complete"].items()},
              {k: (float(f), nodes[k]) for k, f in record["partial"].items()})
    return state, scores, tables


def _nodes(entries: dict[str, list], programs: ProgramGraph) -> dict[str, Node]:
    """The saved nodes, each linked to its saved parent (format 1 saved none; a parent
    missing, or a cycle of them, leaves a node without one)."""
    nodes: dict[str, Node] = {}
    for text in entries:
        chain: list[str] = []
        at: str | None = text
        while at is not None and at not in nodes and at in entries and at not in chain:
            chain.append(at)
            rest = entries[at][4:]
            at = rest[0] if rest and isinstance(rest[0], str) else None
        parent = nodes.get(at) if at is not None else None
        for t in reversed(chain):
            cost, steps, depth, hole_depths = entries[t][:4]
            term = parse_term(t)
            parent = nodes[t] = Node(term, t, float(cost), int(steps), int(depth),
                                     tuple(int(d) for d in hole_depths),
                                     programs.check(term), parent)
    return nodes


def _read(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    from safetensors import safe_open

    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        record = json.loads(meta["neurosym_search"])
    except Exception as err:  # noqa: BLE001 (any damage is reported the same way)
        raise CheckpointError(f"{path} is not a readable neurosym search checkpoint "
                              f"({type(err).__name__}: {str(err)[:200]})") from None
    fmt = record.get("format")
    if not isinstance(fmt, int) or fmt > FORMAT:
        raise CheckpointError(f"{path} was written by a newer neurosym (checkpoint format "
                              f"{fmt}; this version reads up to {FORMAT})")
    return record, tensors


def _check_identity(path: Path, saved: dict, now: dict) -> None:
    if saved.get("task") != now["task"] or saved.get("type") != now["type"]:
        raise CheckpointError(f"{path} is a search of task {saved.get('task')!r} "
                              f"({saved.get('type')}), not of {now['task']!r} ({now['type']})")
    if saved.get("data_sha256") != now["data_sha256"]:
        raise CheckpointError(
            f"{path} was written for other data: its training and validation data hash to "
            f"{str(saved.get('data_sha256'))[:12]}..., this task's to "
            f"{now['data_sha256'][:12]}...")
    if saved.get("productions_sha256") != now["productions_sha256"]:
        raise CheckpointError(f"{path} was written with another production set")
    before, after = saved.get("settings", {}), now["settings"]
    changed = [f"{k} {_show(before.get(k))} then, {_show(after.get(k))} now"
               for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    if changed:
        raise CheckpointError(f"{path} was written with other search settings: "
                              + "; ".join(changed))


def _show(value) -> str:
    return "unset" if value is None else str(value)


def settings_of(config) -> dict:
    """The search settings as JSON values (inf and None kept as they are)."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in dataclasses.asdict(config).items()}
