"""How examples are split: stratified parts of given shares (train, validation, test,
data fractions) and stratified folds for cross-validation. Deterministic under a seed."""

from __future__ import annotations

import torch


def stratified_partition(
    labels: torch.Tensor | None, n: int, fractions: tuple[float, ...], seed: int
) -> list[torch.Tensor]:
    """Split `range(n)` into parts of the given shares, class by class, so every part keeps
    the class balance. The first part is guaranteed one example of each class (a 1%
    training subset still sees every class). A later part takes from the classes too
    small to give it an example each (a class of one or two) their share together, one
    example from each of as many of them as that share rounds to, never a class's last
    example of the first part: a validation split of 52 classes of two series takes 21
    of the 104, not one of each class, half the data. The same seed gives the same
    parts, and the first part grows by prefixes, so smaller data fractions are nested in
    larger ones."""
    gen = torch.Generator().manual_seed(seed)
    perms = _shuffled_classes(labels, n, gen)
    sizes = [_part_sizes(len(perm), fractions) for perm in perms]
    for i, share in enumerate(fractions[1:], 1):
        small = [c for c, size in enumerate(sizes) if size[i] == 0 and size[0] > 1]
        wanted = round(sum(len(perms[c]) for c in small) * share)
        for c in [small[j] for j in torch.randperm(len(small), generator=gen)][:wanted]:
            sizes[c][0] -= 1
            sizes[c][i] += 1
    parts: list[list[torch.Tensor]] = [[] for _ in fractions]
    for perm, class_sizes in zip(perms, sizes):
        start = 0
        for i, size in enumerate(class_sizes):
            parts[i].append(perm[start : start + size])
            start += size
    return [torch.cat(p).sort().values if p else torch.zeros(0, dtype=torch.long) for p in parts]


def stratified_folds(labels: torch.Tensor | None, n: int, k: int, seed: int
                     ) -> list[torch.Tensor]:
    """`range(n)` dealt into k folds of equal size (within one), each class spread over
    them: the examples, shuffled within their class and taken class after class, go to
    folds in turn. Unlike shares per class, this works when a class has fewer examples
    than there are folds (a class of two lands in two folds, not every class in the
    first two)."""
    order = torch.cat(_shuffled_classes(labels, n, torch.Generator().manual_seed(seed)))
    fold = torch.empty(n, dtype=torch.long)
    fold[order] = torch.arange(n) % k
    return [(fold == i).nonzero().flatten() for i in range(k)]


def _shuffled_classes(labels: torch.Tensor | None, n: int, gen: torch.Generator
                      ) -> list[torch.Tensor]:
    """The indices of each class (all of `range(n)` without labels), each shuffled."""
    groups = [torch.arange(n)] if labels is None else \
        [(labels == c).nonzero().flatten() for c in torch.unique(labels)]
    return [members[torch.randperm(len(members), generator=gen)] for members in groups]


def _part_sizes(n: int, fractions: tuple[float, ...]) -> list[int]:
    raw = [n * f for f in fractions]
    sizes = [int(r) for r in raw]
    by_remainder = sorted(range(len(raw)), key=lambda i: sizes[i] - raw[i])
    for i in by_remainder[: n - sum(sizes)]:
        sizes[i] += 1
    if sizes[0] == 0 and fractions[0] > 0 and n > 0:  # the first part sees every class
        j = max(range(len(sizes)), key=lambda j: sizes[j])
        sizes[j] -= 1
        sizes[0] += 1
    return sizes
