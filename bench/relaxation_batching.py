"""Where a search node's time goes: is training many relaxations in one vectorised pass
faster than one after the other? (issue 12)

    python bench/relaxation_batching.py

For G relaxations of one hole type, one training step (forward, loss, backward) is timed
two ways on BasicMotions-sized batches (16 series of 100 steps x 6 channels): one after
the other, and stacked with `torch.func.vmap` over `functional_call`. A vector hole (an
MLP on 6 features) is bound by per-operation overhead, so stacking pays; a list hole (the
pooled encoder, a per-step MLP over 1,600 rows, then mean, spread, max and last) is bound
by its arithmetic, so it cannot.
"""

from __future__ import annotations

import copy
import time

import torch
from torch.func import functional_call, stack_module_state, vmap

from neurosym.interp.values import Seq
from neurosym.lang.types import Arrow, ListT, Vec
from neurosym.relax.networks import Relaxation


def step_ms(fn, repeats: int = 30) -> float:
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def timings(hole: Arrow, x, rows: int, g: int) -> tuple[float, float]:
    nets = [Relaxation([], hole) for _ in range(g)]
    args = x if isinstance(x, tuple) else (x,)

    def one_by_one() -> None:
        sum(n([Seq(*args)] if len(args) == 2 else [args[0]], rows).square().mean()
            for n in nets).backward()

    params, _ = stack_module_state(nets)
    base = copy.deepcopy(nets[0]).to("meta")

    def one(p, *tensors):
        value = Seq(*tensors) if len(tensors) == 2 else tensors[0]
        return functional_call(base, p, ([value], rows))

    def stacked() -> None:
        out = vmap(one, in_dims=(0, *([None] * len(args))))(params, *args)
        out.square().mean((1, 2)).sum().backward()

    return step_ms(one_by_one), step_ms(stacked)


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cases = {"vector hole Vec[6] -> Vec[4]": (Arrow(Vec(6), Vec(4)), torch.randn(16, 6)),
             "list hole List[Vec[6]] -> Vec[4]": (Arrow(ListT(Vec(6)), Vec(4)),
                                                  (torch.randn(16, 100, 6), torch.ones(16, 100)))}
    print(f"{'hole':34} {'G':>4} {'one by one ms/step':>19} {'stacked ms/step':>16} {'gain':>6}")
    for name, (hole, x) in cases.items():
        for g in (1, 8, 40):
            alone, together = timings(hole, x, 16, g)
            print(f"{name:34} {g:4d} {alone:19.2f} {together:16.2f} {alone / together:5.1f}x")


if __name__ == "__main__":
    main()
