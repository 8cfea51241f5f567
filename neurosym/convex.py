"""Programs whose fit is a convex problem, fitted to optimum instead of descended.

A program whose only learned parts are `affine` maps, and whose output is linear in their
weights (`affine (paa[16] xs)`, `add (affine (std xs)) (affine (slope xs))`, `mean (map
affine xs)`, `affine` on a table) computes `out = c + J θ` for its weights θ and inputs
that nothing learns. Its loss (cross-entropy, binary cross-entropy or squared error) is
then convex in θ: with a small L2 penalty it has one minimum, which Newton's method
(L-BFGS for many weights) finds to a tolerance in float64 from the design J, computed
once. The answer does not depend on a clock, a mini-batch order or the machine's load,
and it is the optimum that Adam under a time limit only approached (a linear program at
R² 0.920 where ridge on the same columns reached 0.959).

Linearity is not read off the syntax. Four forward passes first check superposition,
f(a + b) - f(a) - f(b) + f(0) = 0 at random a, b, which turns away a model that is not
linear in its weights (`mul` of two maps, a gate: it trains by gradient descent). J is
then measured exactly in float64: one vectorised forward per weight, or, where an
example has fewer outputs than there are weights, one backward per output of each
example apart (examples do not read each other), and checked once more at a random θ.
Where each output reads its own row of every map by the same features (a map per class
over fixed features), J is X ⊗ I: only X is measured, one pass per feature, and the
solver works on it (`ClassBlocks`). A design that would not fit in memory (`MAX_DESIGN`)
is not solved.

The penalty is scikit-learn's default, on inputs that the maps standardize themselves:
λ/2 ‖W‖² added to the mean loss with λ = 1/n for classification (`LogisticRegression(C=1)`)
and 2/n for regression (`Ridge(alpha=1)`), n the training examples; biases get λ·1e-6 only,
so that the optimum is unique even for a class absent from a training fold.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, vmap

from neurosym.interp.values import Value, index

MAX_DESIGN = 2**25  # examples x outputs x weights (float64: 256 MB)
_CHUNK = 2**22  # design entries computed per vectorised pass
MAX_PASSES = 4096  # forward or backward passes to measure a design
_BLOCKS = 16  # at most this many blocks of examples pulled back apart
NEWTON_WEIGHTS = 512  # up to this many weights, Newton's method; beyond, L-BFGS
_BIAS_SHARE = 1e-6  # a bias's penalty, relative to a weight's (a unique optimum)


@dataclass(frozen=True)
class ClassBlocks:
    """A design in which output k of every example reads row k of every map alone, by the
    same features: J = X ⊗ I, what a linear map per class over fixed features gives
    (`affine` of a reader, sums of such maps, a relaxation's random features). `x` is
    X [n, S]; `positions` [outputs, S] holds the index in θ of the weight that output
    k puts on feature column s. `x @ θ[positions]ᵀ` is J θ at 1/outputs of the dense
    design's cost, in memory and in every product (JapaneseVowels' 9 classes: a
    relaxation's design of 25 M entries becomes 2.8 M)."""

    x: torch.Tensor
    positions: torch.Tensor

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.x) * len(self.positions), int(self.positions.max()) + 1

    def __matmul__(self, theta: torch.Tensor) -> torch.Tensor:
        return (self.x @ theta[self.positions].T).reshape(-1)

    def dense(self) -> torch.Tensor:
        """The design as a matrix [n * outputs, P] (for a small Newton problem)."""
        rows, outputs = len(self.x), len(self.positions)
        out = self.x.new_zeros(rows, outputs, self.shape[1])
        out[:, torch.arange(outputs, device=self.x.device)[:, None], self.positions] = \
            self.x[:, None, :]
        return out.reshape(rows * outputs, -1)


@dataclass(frozen=True)
class Design:
    """`out = offset + matrix @ θ` on the training inputs (float64; outputs flattened
    per example, [n * outputs]), for the weights named `names` of the given shapes."""

    offset: torch.Tensor
    matrix: torch.Tensor | ClassBlocks
    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    biases: torch.Tensor  # [P] bool: the entry is a bias

    def vector(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        return _split(theta, self.names, self.shapes)


def _split(theta: torch.Tensor, names: tuple[str, ...], shapes: tuple[torch.Size, ...]
           ) -> dict[str, torch.Tensor]:
    """A flat weight vector as the named weights it stands for."""
    out, i = {}, 0
    for name, shape in zip(names, shapes):
        out[name] = theta[i:i + shape.numel()].reshape(shape)
        i += shape.numel()
    return out


def affine_weights(model: nn.Module) -> dict[str, nn.Parameter] | None:
    """The model's trainable parameters if all of them are `affine` maps' weights and
    biases (and there is at least one), else None."""
    from neurosym.interp.primitives import Affine

    owned = {id(p) for m in model.modules() if isinstance(m, Affine)
             for p in m.linear.parameters()}
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not params or any(id(p) not in owned for p in params.values()):
        return None
    return params


def design(model: nn.Module, inputs: list[Value], rows: int) -> Design | None:
    """The design of a model that is linear in its `affine` weights on `inputs`, or None
    (other learned parts, not linear, too large, or not vectorisable). The model must be
    set up (its maps' input statistics taken) and is left unchanged."""
    params = affine_weights(model)
    if params is None:
        return None
    names = tuple(params)
    shapes = tuple(p.shape for p in params.values())
    size = sum(s.numel() for s in shapes)
    device = next(iter(params.values())).device
    buffers = {n: b for n, b in model.named_buffers()}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            offset, additive = _superposition(model, buffers, names, shapes, inputs,
                                              size, device)
            if not additive:
                return None
            probe = torch.randn(1, size, dtype=torch.float64, device="cpu",
                                generator=torch.Generator().manual_seed(0)).to(device)
            actual = _outputs(model, buffers, names, shapes, probe, inputs)[0]
            matrix = _class_blocks(model, buffers, names, shapes, inputs, offset, rows)
            if matrix is None or not _reproduces(matrix, offset, probe[0], actual):
                matrix = None if offset.numel() * size > MAX_DESIGN else \
                    _matrix(model, buffers, names, shapes, inputs, offset, size, rows)
                if matrix is None or not _reproduces(matrix, offset, probe[0], actual):
                    return None  # not linear in its weights
    except (RuntimeError, ValueError, TypeError, NotImplementedError):
        return None  # something in the program does not run under vmap: not solved
    finally:
        model.train(was_training)
    biases = torch.cat([torch.full((s.numel(),), n.endswith("bias"), device=device)
                        for n, s in zip(names, shapes)])
    return Design(offset, matrix, names, shapes, biases)


def _reproduces(matrix: torch.Tensor | ClassBlocks, offset: torch.Tensor, theta: torch.Tensor,
                actual: torch.Tensor) -> bool:
    """Whether the design predicts the model's outputs `actual` at weights θ."""
    entries = matrix.x if isinstance(matrix, ClassBlocks) else matrix
    scale = 1 + float(actual.abs().max())
    return bool(torch.isfinite(entries).all() and torch.isfinite(actual).all()) and \
        torch.allclose(actual, offset + matrix @ theta, rtol=1e-6, atol=1e-6 * scale)


def _superposition(model: nn.Module, buffers: dict, names: tuple[str, ...],
                   shapes: tuple[torch.Size, ...], inputs: list[Value], size: int,
                   device: torch.device) -> tuple[torch.Tensor, bool]:
    """The outputs at θ = 0, and whether f(a + b) - f(a) - f(b) + f(0) vanishes for two
    random weight vectors: four forward passes that turn away a model that is not linear
    in its weights (an `ite`, a `mul` of two maps) before its design is measured."""
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, size, dtype=torch.float64, generator=gen, device="cpu")
    thetas = torch.stack([torch.zeros_like(a), a, b, a + b]).to(device)
    zero, fa, fb, fab = _outputs(model, buffers, names, shapes, thetas, inputs)
    gap = fab - fa - fb + zero
    scale = 1 + float(torch.stack([fa, fb, fab]).abs().max())
    return zero, bool(torch.isfinite(gap).all()) and float(gap.abs().max()) <= 1e-6 * scale


def _class_blocks(model: nn.Module, buffers: dict, names: tuple[str, ...],
                  shapes: tuple[torch.Size, ...], inputs: list[Value], offset: torch.Tensor,
                  rows: int) -> ClassBlocks | None:
    """The design as `ClassBlocks`, if every weight is a map's [outputs, d] matrix or
    [outputs] bias: X is the first output's column of J for the first row of each map,
    measured as `_matrix` measures J (`design` then checks the blocks at a random θ, as
    it checks any design). None if the weights are not shaped so."""
    outputs = offset.numel() // rows
    if outputs < 2 or any(len(s) > 2 or s[0] != outputs for s in shapes):
        return None
    positions, start, device = [], 0, offset.device
    for shape in shapes:
        per_output = shape.numel() // outputs
        positions.append(start + torch.arange(outputs, device=device)[:, None] * per_output
                         + torch.arange(per_output, device=device))
        start += shape.numel()
    positions = torch.cat(positions, 1)
    if rows * positions.shape[1] > MAX_DESIGN:
        return None
    x = _matrix(model, buffers, names, shapes, inputs, offset, start, rows, positions[0])
    return None if x is None else ClassBlocks(x, positions)


def _matrix(model: nn.Module, buffers: dict, names: tuple[str, ...],
            shapes: tuple[torch.Size, ...], inputs: list[Value], offset: torch.Tensor,
            size: int, rows: int, first_row: torch.Tensor | None = None
            ) -> torch.Tensor | None:
    """J [n * outputs, P], or, given the indices of each map's `first_row` weights, the
    first output's column of J for those weights alone ([n, len(first_row)], X of
    `ClassBlocks`); by whichever costs less: one forward pass per weight (columns), or
    one backward pass per output of a block of examples, the blocks apart (an example's
    outputs read its own inputs only). None past `MAX_PASSES`."""
    outputs = offset.numel() // rows
    kept = outputs if first_row is None else 1  # outputs measured per example
    width = size if first_row is None else len(first_row)  # weights measured
    if min(kept, width) > MAX_PASSES:
        return None
    device = offset.device
    block = max(1, min(_CHUNK // (kept * width), -(-rows // _BLOCKS)))
    if width <= 4 * kept * block:  # a backward pass costs a few forward ones
        measured = torch.arange(size, device=device) if first_row is None else first_row
        chunk = max(1, _CHUNK // max(offset.numel(), 1))
        moved = torch.cat([_outputs(model, buffers, names, shapes,
                                    _units(measured[i:i + chunk], size), inputs)
                           for i in range(0, width, chunk)]) - offset
        if first_row is not None:
            moved = moved.reshape(width, rows, outputs)[:, :, 0]
        return moved.T.contiguous()
    # examples in blocks: each block's outputs, pulled back together (is_grads_batched,
    # which needs no torch._dynamo), read only that block's inputs
    theta = torch.zeros(size, dtype=torch.float64, device=device, requires_grad=True)
    parts = []
    with torch.enable_grad():
        for start in range(0, rows, block):
            picked = torch.arange(start, min(start + block, rows), device=device)
            out = _call(model, buffers, names, shapes, theta, [index(v, picked) for v in inputs])
            if first_row is not None:
                out = out.reshape(len(picked), outputs)[:, 0]
            eye = torch.eye(out.numel(), dtype=torch.float64, device=device)
            grads = torch.autograd.grad(out, theta, eye, is_grads_batched=True)[0]
            parts.append(grads if first_row is None else grads[:, first_row])
    return torch.cat(parts)


def _units(indices: torch.Tensor, size: int) -> torch.Tensor:
    """Weight vectors [len(indices), size], each 1 at one of `indices` and 0 elsewhere."""
    units = torch.zeros(len(indices), size, dtype=torch.float64, device=indices.device)
    units[torch.arange(len(indices), device=indices.device), indices] = 1.0
    return units


def _outputs(model: nn.Module, buffers: dict, names: tuple[str, ...],
             shapes: tuple[torch.Size, ...], thetas: torch.Tensor, inputs: list[Value]
             ) -> torch.Tensor:
    """The flattened outputs [K, n * outputs] (float64) for K weight vectors."""

    return vmap(lambda theta: _call(model, buffers, names, shapes, theta, inputs))(
        thetas.double())


def _call(model: nn.Module, buffers: dict, names: tuple[str, ...],
          shapes: tuple[torch.Size, ...], theta: torch.Tensor, inputs: list[Value]
          ) -> torch.Tensor:
    """The flattened outputs (float64) of the model with weights θ."""
    weights = _split(theta, names, shapes)
    return functional_call(model, {**buffers, **weights}, tuple(inputs)).double().reshape(-1)


def solve(d: Design, y: torch.Tensor, loss_kind: str, class_weights: torch.Tensor | None,
          rows: int, tolerance: float = 1e-7, max_iterations: int = 1000
          ) -> tuple[torch.Tensor, int]:
    """The penalized optimum θ (float64) and the iterations it took: Newton's method up
    to `NEWTON_WEIGHTS` weights (a few steps, each a small solve), L-BFGS beyond (where
    one Hessian would cost more than its iterations).

    With more weights than outputs on the training data (random features, a wide table,
    few examples) and few enough of those for Newton's method, the problem is first
    reduced to as many unknowns as the design has rows, exactly: the optimum
    θ = -P⁻¹ Jᵀ g lies in P^-1/2 times the row space of J P^-1/2 (P the penalty), so with
    V an orthonormal basis of that space, θ = P^-1/2 V z and the penalty is ½‖z‖² (V from
    the eigenvectors of the small A Aᵀ, not an SVD of the wide A)."""
    lam = (2.0 if loss_kind == "mse" else 1.0) / rows
    penalty = torch.where(d.biases, lam * _BIAS_SHARE, lam)
    if isinstance(d.matrix, ClassBlocks):
        return _solve_blocks(d, penalty, y, loss_kind, class_weights, rows, tolerance,
                             max_iterations)
    matrix, basis = d.matrix, None
    if matrix.shape[0] < matrix.shape[1] and matrix.shape[0] <= NEWTON_WEIGHTS:
        matrix, basis = _row_space(matrix, penalty)
        penalty = torch.ones(matrix.shape[1], dtype=matrix.dtype, device=matrix.device)
    z, iterations = _penalized(d.offset, matrix, penalty, y, loss_kind, class_weights, rows,
                               tolerance, max_iterations)
    return (z if basis is None else basis @ z), iterations


def _solve_blocks(d: Design, penalty: torch.Tensor, y: torch.Tensor, loss_kind: str,
                  class_weights: torch.Tensor | None, rows: int, tolerance: float,
                  max_iterations: int) -> tuple[torch.Tensor, int]:
    """`solve` for a `ClassBlocks` design: each output's weights on the columns of X are
    unknowns [outputs, S]. X is first reduced to its row space where `solve` would
    reduce J (more columns than rows, and few enough rows for Newton's method): once for
    all outputs, since every output's optimal weights lie in that space. (Not for
    L-BFGS: in the reduced coordinates it went 5x less far in a relaxed solve's 100
    iterations on JapaneseVowels.)"""
    blocks = d.matrix
    x, positions = blocks.x, blocks.positions
    outputs = len(positions)
    column_penalty = penalty[positions[0]]  # a column's penalty is the same for every output
    basis = None
    if x.shape[0] < x.shape[1] and outputs * x.shape[0] <= NEWTON_WEIGHTS:
        x, basis = _row_space(x, column_penalty)
        column_penalty = torch.ones(x.shape[1], dtype=x.dtype, device=x.device)
    width = x.shape[1]
    reduced = ClassBlocks(x, torch.arange(outputs * width, device=x.device).reshape(outputs, -1))
    z, iterations = _penalized(d.offset, reduced, column_penalty.repeat(outputs), y, loss_kind,
                               class_weights, rows, tolerance, max_iterations)
    weights = z.reshape(outputs, width)
    if basis is not None:
        weights = weights @ basis.T
    theta = torch.zeros(len(penalty), dtype=z.dtype, device=z.device)
    theta[positions.reshape(-1)] = weights.reshape(-1)
    return theta, iterations


def _row_space(matrix: torch.Tensor, penalty: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(A V, P^-1/2 V) for A = matrix P^-1/2 and V an orthonormal basis of A's row space:
    θ = P^-1/2 V z turns ½ Σ penalty θ² into ½ ‖z‖² and `matrix @ θ` into A V z. V from
    the eigenvectors of the small A Aᵀ, not an SVD of the wide A."""
    scaled = matrix * penalty.rsqrt()
    eigen, u = torch.linalg.eigh(scaled @ scaled.T)
    kept = eigen > eigen[-1].clamp_min(0) * 1e-12
    root = eigen[kept].sqrt()
    return u[:, kept] * root, (scaled.T @ (u[:, kept] / root)) * penalty.rsqrt()[:, None]


def _penalized(offset: torch.Tensor, matrix: torch.Tensor | ClassBlocks, penalty: torch.Tensor,
               y: torch.Tensor, loss_kind: str, class_weights: torch.Tensor | None,
               rows: int, tolerance: float, max_iterations: int) -> tuple[torch.Tensor, int]:
    """argmin over θ of the loss of `offset + matrix @ θ` plus ½ Σ penalty θ²."""
    from neurosym.train import losses_per_model

    out_shape = (rows, -1) if loss_kind == "cross_entropy" else tuple(y.shape)
    target = y if loss_kind == "cross_entropy" else y.double()
    weights = None if class_weights is None else class_weights.double()

    def value(theta: torch.Tensor) -> torch.Tensor:
        out = (offset + matrix @ theta).reshape(out_shape)
        return losses_per_model(loss_kind, out.unsqueeze(0), target.unsqueeze(0), weights)[0] \
            + 0.5 * (penalty * theta**2).sum()

    def objective(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        theta = theta.detach().requires_grad_()
        v = value(theta)
        (grad,) = torch.autograd.grad(v, theta)
        return v.detach(), grad

    start = torch.zeros(matrix.shape[1], dtype=torch.float64, device=offset.device)
    if len(start) <= NEWTON_WEIGHTS:
        dense = matrix.dense() if isinstance(matrix, ClassBlocks) else matrix

        def second(theta: torch.Tensor) -> torch.Tensor:
            out = (offset + dense @ theta).reshape(rows, -1)
            return loss_hessian(dense, out, loss_kind, y, weights) + torch.diag(penalty)

        return newton(objective, second, start, tolerance, max_iterations)
    return lbfgs(objective, start, tolerance, max_iterations)


def loss_hessian(matrix: torch.Tensor, out: torch.Tensor, loss_kind: str, y: torch.Tensor,
                 class_weights: torch.Tensor | None) -> torch.Tensor:
    """The Hessian in θ of `train.losses_per_model`'s loss of `out = c + matrix @ θ`
    ([n, outputs]), weighted as it weighs: J^T (∂²loss/∂out²) J, block by example for
    the cross-entropy (diag(p) - p p^T), entry by entry for the others."""
    rows, width = out.shape
    design = matrix.reshape(rows, width, -1)
    if loss_kind == "cross_entropy":
        share = torch.full((rows,), 1.0 / rows, dtype=out.dtype, device=out.device) \
            if class_weights is None else class_weights[y] / class_weights[y].sum()
        p = torch.softmax(out, 1)
        weighted = (design * (share[:, None] * p)[:, :, None]).reshape(rows * width, -1)
        mixed = torch.einsum("no,nop->np", p, design)
        return weighted.T @ matrix - (mixed * share[:, None]).T @ mixed
    if loss_kind == "bce":
        target = y.double().reshape(rows, width)
        pos = 1.0 if class_weights is None else class_weights[1] / class_weights[0]
        sig = torch.sigmoid(out)
        curve = (pos * target + 1 - target) * sig * (1 - sig) / out.numel()
    else:
        curve = torch.full_like(out, 2.0 / out.numel())
    return (matrix * curve.reshape(-1, 1)).T @ matrix


def newton(objective, second, x: torch.Tensor, tolerance: float, max_iterations: int
           ) -> tuple[torch.Tensor, int]:
    """Minimize a smooth, strictly convex function by Newton's method with a backtracking
    (Armijo) line search; `second(x)` is its Hessian. Deterministic."""
    value, grad = objective(x)
    iterations = 0
    while iterations < max_iterations and float(grad.abs().max()) >= tolerance:
        iterations += 1
        h = second(x)
        jitter = 1e-12 * float(h.diagonal().abs().max().clamp_min(1.0))
        eye = torch.eye(len(x), dtype=x.dtype, device=x.device)
        factor, info = torch.linalg.cholesky_ex(h + jitter * eye)
        direction = -torch.cholesky_solve(grad[:, None], factor)[:, 0] if int(info) == 0 \
            else -grad
        new_x, new_value, new_grad = _armijo(objective, x, value, grad, direction, 1.0)
        if not float(new_value) < float(value):
            break  # no progress left at float64 precision
        x, value, grad = new_x, new_value, new_grad
    return x, iterations


def _armijo(objective, x: torch.Tensor, value: torch.Tensor, grad: torch.Tensor,
            direction: torch.Tensor, step: float
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first point along `direction` from `step`, halving it, with a sufficient
    decrease (Armijo's condition, c = 1e-4): the point, its value and its gradient."""
    slope = float(grad @ direction)
    while True:
        new_x = x + step * direction
        new_value, new_grad = objective(new_x)
        if float(new_value) <= float(value) + 1e-4 * step * slope or step < 1e-20:
            return new_x, new_value, new_grad
        step *= 0.5


def lbfgs(objective, x: torch.Tensor, tolerance: float, max_iterations: int,
          memory: int = 20) -> tuple[torch.Tensor, int]:
    """Minimize a smooth convex function (`objective(x) -> (value, gradient)`) by
    L-BFGS with a backtracking (Armijo) line search, until the largest gradient entry is
    below `tolerance` or a step no longer lowers the value. Deterministic."""
    value, grad = objective(x)
    s_list: list[torch.Tensor] = []
    y_list: list[torch.Tensor] = []
    iterations = 0
    while iterations < max_iterations and float(grad.abs().max()) >= tolerance:
        iterations += 1
        direction = -_two_loop(grad, s_list, y_list)
        if float(grad @ direction) >= 0:  # not a descent direction: restart from the gradient
            s_list, y_list, direction = [], [], -grad
        step = 1.0 if s_list else min(1.0, 1.0 / max(float(grad.abs().sum()), 1e-12))
        new_x, new_value, new_grad = _armijo(objective, x, value, grad, direction, step)
        if not float(new_value) < float(value):
            break  # no progress left at float64 precision
        s, yy = new_x - x, new_grad - grad
        if float(s @ yy) > 1e-12:
            s_list.append(s)
            y_list.append(yy)
            if len(s_list) > memory:
                s_list.pop(0)
                y_list.pop(0)
        x, value, grad = new_x, new_value, new_grad
    return x, iterations


def _two_loop(grad: torch.Tensor, s_list: list[torch.Tensor],
              y_list: list[torch.Tensor]) -> torch.Tensor:
    """The L-BFGS inverse-Hessian product with `grad` (Nocedal & Wright, Algorithm 7.4)."""
    q = grad.clone()
    alphas = []
    for s, y in zip(reversed(s_list), reversed(y_list)):
        rho = 1.0 / float(y @ s)
        alpha = rho * float(s @ q)
        q -= alpha * y
        alphas.append((rho, alpha))
    if s_list:
        q *= float(s_list[-1] @ y_list[-1]) / float(y_list[-1] @ y_list[-1])
    for (s, y), (rho, alpha) in zip(zip(s_list, y_list), reversed(alphas)):
        beta = rho * float(y @ q)
        q += (alpha - beta) * s
    return q


def fit_exactly(model: nn.Module, inputs: list[Value], y: torch.Tensor, loss_kind: str,
                class_weights: torch.Tensor | None = None, tolerance: float = 1e-7,
                max_iterations: int = 1000) -> int | None:
    """Set the model's `affine` weights to the penalized optimum on (`inputs`, `y`) if its
    fit is convex (to a largest gradient entry of `tolerance`, in at most `max_iterations`
    steps); the solver's iterations, or None (nothing changed) if it is not."""
    rows = len(y)
    d = design(model, inputs, rows)
    if d is None:
        return None
    theta, iterations = solve(d, y, loss_kind, class_weights, rows, tolerance, max_iterations)
    if not torch.isfinite(theta).all():
        return None
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in d.vector(theta).items():
            params[name].copy_(value.to(params[name].dtype))
    return iterations
