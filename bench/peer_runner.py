"""Peer side of the search benchmark: NEAR as neurosym-lib 0.0.80 implements it.

Run with the peer's own interpreter (set up by bench/peer_setup.sh), never ours:

    bench/.peer/venv/bin/python bench/peer_runner.py split.npz --time-limit 60

The .npz holds x_{train,val,test} (float32 [n, T, F]) and y_{train,val,test} (int64 class
labels). The search space mirrors our `sequence` production set as far as the peer's
point-free DSL allows (see make_dsl); holes are filled by the peer's neural relaxations and
the search is the peer's bounded A*. The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from pathlib import Path

# Our repository has a package called `neurosym` too: keep it off the path.
_REPO = Path(__file__).resolve().parents[1]
sys.path = [p for p in sys.path if Path(p or ".").resolve() != _REPO]

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from peer_near import peak_rss_mb  # noqa: E402  (bench/ is this script's folder)
from torch import nn  # noqa: E402

try:
    from neurosym.examples import near
    from neurosym.examples.near.operations import ite_torch, map_torch

    import neurosym as ns
except ImportError as err:
    sys.exit(f"peer_runner: {err}: run it with bench/.peer/venv/bin/python "
             "(bash bench/peer_setup.sh makes it)")

SYSTEM = "neurosym-lib 0.0.80"
NOT_EQUAL = [
    "relaxations: the peer's GenericMLPRNN hole filler (vanilla tanh RNN for list inputs, "
    "1-hidden-layer LeakyReLU MLP for vectors); ours pools mean/std/max/last for lists",
    "no early stopping or best-epoch restore in the peer's trainer: every node and the "
    "final program train a fixed number of epochs; ours stops on validation loss (patience)",
    "final training: fixed --final-epochs (default 150) without validation-based selection; "
    "ours trains up to 150 epochs with patience 30 and keeps the best validation epoch",
    "structural cost: the peer's MinimalSteps cost counts the minimal size still needed to "
    "fill the holes (cost-to-go) and blends (1-w)*val_loss + w*cost; ours adds "
    "cost_weight*ln(C)*(sum of production costs used so far)",
    "no caching of scored nodes in the peer: a program reached twice is trained twice",
    "batches: the peer shuffles the training set once (fixed order every epoch); ours "
    "reshuffles each epoch; validation loss is a mean of per-batch means",
    "no padding masks in the peer: sequences are padded by repeating their last step, so "
    "its mean and std weigh that step more (ours mask padding out)",
    "peer programs are point-free combinators; window[5], fold and the paired add(mean, std) "
    "productions of our set are not mirrored",
    "peer bounded A* depth counts search-tree expansions and filters by AST height; ours "
    "bounds program depth",
]


class TimeUp(Exception):
    """Raised from inside the cost function when the search budget is spent."""




def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", help=".npz with x_/y_ train, val and test arrays")
    p.add_argument("--time-limit", type=float, default=60.0, help="search seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs per node (default: about 150 optimizer steps, 3..60, as ours)")
    p.add_argument("--final-epochs", type=int, default=150)
    p.add_argument("--lr", type=float, default=0.03)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--hidden", type=int, default=32, help="relaxation hidden size")
    p.add_argument("--max-depth", type=int, default=6)
    p.add_argument("--cost-weight", type=float, default=0.05,
                   help="as ours: f = loss + cost_weight*ln(C)*cost, mapped to the peer's w")
    p.add_argument("--groups", default="",
                   help="feature groups for selection leaves, e.g. '0:3,3:6' (default: each "
                        "single feature)")
    return p.parse_args(argv)


def make_dsl(n_feat: int, n_cls: int, groups: list[tuple[int, int]]) -> ns.DSL:
    """Our `sequence` set in the peer's point-free style. %v is any vector type: the class
    logits {f, C} or the ite condition {f, 1}; %a is a vector or a sequence of vectors."""
    d = ns.DSLFactory(F=n_feat, C=n_cls, max_overall_depth=5)
    d.typedef("fF", "{f, $F}")
    d.typedef("fC", "{f, $C}")
    d.typedef("f1", "{f, 1}")
    d.filtered_type_variable("v", lambda t: isinstance(t, ns.TensorType))
    d.filtered_type_variable("a", lambda t: isinstance(t, (ns.TensorType, ns.ListType)))
    # sequence -> value: \xs -> ?? (mean xs), (std xs), (last xs); \xs -> mean (map ?? xs)
    d.production("mean_of", "($fF -> %v) -> [$fF] -> %v", lambda f: lambda xs: f(xs.mean(1)))
    d.production("std_of", "($fF -> %v) -> [$fF] -> %v",
                 lambda f: lambda xs: f(torch.sqrt(xs.var(1, unbiased=False) + 1e-6)))
    d.production("last_of", "($fF -> %v) -> [$fF] -> %v", lambda f: lambda xs: f(xs[:, -1]))
    d.production("mean_map", "($fF -> %v) -> [$fF] -> %v",
                 lambda f: lambda xs: map_torch(f, xs).mean(1))
    # combinators, on vectors and whole sequences alike
    d.production("add", "(%a -> %v, %a -> %v) -> %a -> %v", lambda f, g: lambda x: f(x) + g(x))
    d.production("mul", "(%a -> %v, %a -> %v) -> %a -> %v", lambda f, g: lambda x: f(x) * g(x))
    d.production("ite", "(%a -> $f1, %a -> %v, %a -> %v) -> %a -> %v", ite_torch)
    # leaves: affine, and affine of a feature (group); one production per output size
    for suffix, out, size in (("C", "$fC", n_cls), ("b", "$f1", 1)):
        d.production(f"affine_{suffix}", f"() -> $fF -> {out}", lambda lin: lin,
                     {"lin": lambda size=size: nn.Linear(n_feat, size)})
        for lo, hi in groups:
            d.production(f"affine_sel{lo}_{hi}_{suffix}", f"() -> $fF -> {out}",
                         lambda lin, lo=lo, hi=hi: lambda x: lin(x[:, lo:hi]),
                         {"lin": lambda k=hi - lo, size=size: nn.Linear(k, size)})
    d.prune_to("[$fF] -> $fC")
    return d.finalize()


def has_holes(program: ns.SExpression) -> bool:
    return isinstance(program, ns.Hole) or any(has_holes(c) for c in program.children)


class BudgetedValidationCost(near.ValidationCost):
    """The peer's validation heuristic, counting trainings, remembering the best complete
    program scored, and stopping the search (TimeUp) once the deadline has passed."""

    def __init__(self, *, deadline: float, start: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.deadline, self.start, self.trained = deadline, start, 0
        self.best: tuple[float, float, ns.SExpression] | None = None  # (loss, time, program)
        self.incumbents: list[tuple[float, ns.SExpression]] = []  # (time, each best in turn)

    def compute_cost(self, dsl, model, embedding) -> float:
        if time.perf_counter() > self.deadline:
            raise TimeUp
        loss = super().compute_cost(dsl, model, embedding)
        self.trained += 1
        program = model.uninitialize()
        if not has_holes(program) and math.isfinite(loss):
            if self.best is None or loss < self.best[0]:
                self.best = (loss, time.perf_counter() - self.start, program)
                self.incumbents.append(self.best[1:])
        return loss


def datamodule(x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray,
               batch: int, seed: int) -> ns.DatasetWrapper:
    return ns.DatasetWrapper(ns.DatasetFromNpy(x, y, seed), ns.DatasetFromNpy(xv, yv, None),
                             batch_size=batch)


def cross_entropy(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(pred, target.reshape(-1).long())


def accuracy(dsl: ns.DSL, program, x: np.ndarray, y: np.ndarray) -> float:
    module = near.TorchProgramModule(dsl, program).eval()
    with torch.no_grad():
        pred = module(torch.from_numpy(x), environment=()).argmax(-1).numpy()
    return float((pred == y).mean())


def smallest_program(dsl: ns.DSL, root: ns.Type, max_depth: int) -> ns.SExpression:
    """Fallback when the budget ends before any complete program was scored: the first
    complete program breadth-first (no training)."""
    g = near.near_graph(dsl, root, max_depth=max_depth, cost=lambda _: 0.0)
    return next(iter(ns.search.bfs(g)))


def final_training(dsl: ns.DSL, program, cfg, dm, args: argparse.Namespace):
    """The peer's final training of `program` (fixed epochs): the model and its
    validation loss."""
    torch.manual_seed(args.seed)
    trained = dsl.initialize(program)
    final = near.ValidationCost(trainer_cfg=cfg, datamodule=dm, n_epochs=args.final_epochs)
    return trained, final.compute_cost(dsl, trained, near.IdentityProgramEmbedding())


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    data = {k: v for k, v in np.load(args.data).items()}
    x_tr, y_tr = data["x_train"].astype(np.float32), data["y_train"].astype(np.int64)
    n_feat, n_cls = x_tr.shape[2], int(max(y.max() for k, y in data.items() if k[0] == "y")) + 1
    groups = ([tuple(map(int, g.split(":"))) for g in args.groups.split(",")] if args.groups
              else [(i, i + 1) for i in range(n_feat)] if n_feat > 1 else [])
    epochs = args.epochs or max(3, min(60, math.ceil(150 / math.ceil(len(y_tr) / args.batch_size))))
    dm = datamodule(x_tr, y_tr, data["x_val"].astype(np.float32),
                    data["y_val"].astype(np.int64), args.batch_size, args.seed)
    cfg = near.NEARTrainerConfig(lr=args.lr, n_epochs=epochs, seed=args.seed,
                                 scheduler="none", loss_callback=cross_entropy)
    dsl = near.NeuralDSL.from_dsl(make_dsl(n_feat, n_cls, groups),
                                  near.GenericMLPRNNNeuralHoleFiller(hidden_size=args.hidden))
    root = ns.parse_type("([{f, $F}]) -> {f, $C}", ns.TypeDefiner(F=n_feat, C=n_cls))
    k = args.cost_weight * math.log(n_cls)
    start = time.perf_counter()
    heuristic = BudgetedValidationCost(deadline=start + args.time_limit, start=start,
                                       trainer_cfg=cfg, datamodule=dm)
    cost = near.NearCost(structural_cost=near.MinimalStepsNearStructuralCost(symbol_costs={}),
                         validation_heuristic=heuristic, structural_cost_weight=k / (1 + k))
    graph = near.near_graph(dsl, root, max_depth=args.max_depth, cost=cost)
    popped, first_goal, exhausted = 0, None, False
    try:
        for goal in ns.search.bounded_astar(graph, max_depth=args.max_depth):
            popped += 1
            first_goal = first_goal or (ns.render_s_expression(goal),
                                        time.perf_counter() - start)
        exhausted = True
    except TimeUp:
        pass
    search_s = time.perf_counter() - start
    fallback = heuristic.best is None
    program = smallest_program(dsl, root, args.max_depth) if fallback else heuristic.best[2]
    test = {"x": data["x_test"].astype(np.float32), "y": data["y_test"]}
    trained, val_loss = final_training(dsl, program, cfg, dm, args)
    total_s = time.perf_counter() - start
    incumbents = [{"at_s": at, "program": ns.render_s_expression(p),
                   "test_accuracy": accuracy(dsl, final_training(dsl, p, cfg, dm, args)[0],
                                             test["x"], test["y"])}
                  for at, p in heuristic.incumbents[:-1]]
    if not fallback:  # the last one is the program returned, trained above
        incumbents.append({"at_s": heuristic.best[1], "program": ns.render_s_expression(program),
                           "test_accuracy": accuracy(dsl, trained, test["x"], test["y"])})
    return {
        "system": SYSTEM,
        "test_accuracy": accuracy(dsl, trained, test["x"], test["y"]),
        "val_accuracy": accuracy(dsl, trained, data["x_val"].astype(np.float32), data["y_val"]),
        "val_loss": val_loss,
        "program": ns.render_s_expression(program),
        "time_to_best_s": None if fallback else heuristic.best[1],
        "search_s": search_s,
        "total_s": total_s,
        "nodes_trained": heuristic.trained,
        "incumbents": incumbents,
        "goals_popped": popped,  # complete programs A* popped (its answers, in order)
        "first_goal": first_goal and {"program": first_goal[0], "at_s": first_goal[1]},
        "search_exhausted": exhausted,
        "fallback_program": fallback,
        "epochs_per_node": epochs,
        "peak_rss_mb": peak_rss_mb(),
        "settings_not_equal": NOT_EQUAL,
    }


def main(argv: list[str]) -> None:
    """The peer prints a line per trained node to stdout: send it to stderr, so that
    stdout carries only the JSON result."""
    with contextlib.redirect_stdout(sys.stderr):
        result = run(parse_args(argv))
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
