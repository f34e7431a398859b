"""Random compositions across nablab.numpy's families, checked against HIPS autograd.

A program is a short straight-line list of instructions over registers that all
hold (3, 4) float64 arrays; each instruction applies one entry of ``OPS`` to
earlier registers.  The same program runs twice, once with ``nablab.numpy`` as
``m`` and once with ``autograd.numpy`` (the op bodies only use ``m.``), so the
two sides compute exactly the same composition.  Values, gradients, JVPs and
Hessian-vector products (forward-over-reverse and reverse-over-reverse) must
agree to 1e-10.  Inputs stay in each op's smooth domain by construction (logs
of ``1 + x^2``, divisions by ``1 + y^2``), and ties at kinks have probability 0.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

autograd = pytest.importorskip("autograd")
import autograd.numpy as anp  # noqa: E402

from hypothesis import HealthCheck, assume, given, note, settings, strategies as st  # noqa: E402

import nablab as nb  # noqa: E402
import nablab.numpy as nnp  # noqa: E402

RTOL, ATOL = 1e-10, 1e-10
SHAPE = (3, 4)
_rng = np.random.default_rng(7)
M4 = _rng.standard_normal((4, 4))
M3 = _rng.standard_normal((3, 3))
C = _rng.standard_normal(SHAPE)
I3 = np.eye(3)

# name -> (arity, body(m, *registers)); every body maps (3, 4) arrays to a (3, 4) array.
OPS = {
    # elementwise
    "sin": (1, lambda m, x: m.sin(x)),
    "tanh": (1, lambda m, x: m.tanh(x)),
    "arctan": (1, lambda m, x: m.arctan(x)),
    "arcsinh": (1, lambda m, x: m.arcsinh(x)),
    "exp_tanh": (1, lambda m, x: m.exp(m.tanh(x))),
    "log1p_sq": (1, lambda m, x: m.log1p(x * x)),
    "log_1_sq": (1, lambda m, x: m.log(1.0 + m.square(x))),
    "sqrt_1_sq": (1, lambda m, x: m.sqrt(1.0 + x ** 2)),
    "cosh_clip": (1, lambda m, x: m.cosh(m.tanh(x))),
    "expm1": (1, lambda m, x: m.expm1(0.5 * m.tanh(x))),
    "sinc": (1, lambda m, x: m.sinc(x)),
    "add": (2, lambda m, x, y: x + y),
    "sub": (2, lambda m, x, y: m.subtract(x, y)),
    "mul": (2, lambda m, x, y: x * y),
    "div": (2, lambda m, x, y: x / (1.0 + y * y)),
    "maximum": (2, lambda m, x, y: m.maximum(x, y)),
    "pow": (2, lambda m, x, y: m.power(1.0 + x * x, 0.5 * m.tanh(y))),
    "arctan2": (2, lambda m, x, y: m.arctan2(x, 1.0 + y * y)),
    "hypot": (2, lambda m, x, y: m.hypot(x, 1.0 + y * y)),
    "logaddexp": (2, lambda m, x, y: m.logaddexp(x, y)),
    "where": (2, lambda m, x, y: m.where(C > 0, x, y)),
    # reductions, broadcast back
    "center": (1, lambda m, x: x - m.mean(x, axis=1, keepdims=True)),
    "scale_std": (1, lambda m, x: x / (1.0 + m.std(x, axis=0, keepdims=True))),
    "times_sum": (2, lambda m, x, y: x * m.sum(y, axis=0, keepdims=True)),
    "times_prod": (2, lambda m, x, y: x * m.prod(1.0 + 0.1 * m.tanh(y), axis=1, keepdims=True)),
    "cumsum": (1, lambda m, x: m.cumsum(x, axis=1)),
    "max_axis": (1, lambda m, x: x + m.max(x, axis=0)),
    "logsumexp_rows": (1, lambda m, x: x - m.log(m.sum(m.exp(x), axis=1, keepdims=True))),
    # shapes and indexing
    "roll": (1, lambda m, x: m.roll(x, 1, axis=1)),
    "flipud": (1, lambda m, x: m.flipud(x)),
    "transpose_twice": (1, lambda m, x: m.transpose(m.reshape(m.transpose(x), (4, 3))).reshape(3, 4)),
    "concat": (2, lambda m, x, y: m.concatenate([x[:, :2], y[:, 2:]], axis=1)),
    "tile": (1, lambda m, x: m.tile(x[:, :2], (1, 2))),
    "index": (1, lambda m, x: x[[2, 0, 1], :] * x[:, [3, 2, 1, 0]]),
    "triu": (1, lambda m, x: m.triu(x) + m.tril(x, -1) * 0.5),
    "sort": (1, lambda m, x: m.concatenate([m.sort(x[0])[None], x[1:]])),
    "stack_rows": (2, lambda m, x, y: m.stack([x[0], y[1], x[2] * y[2]])),
    # products and linear algebra
    "matmul": (1, lambda m, x: m.dot(x, M4)),
    "left_matmul": (1, lambda m, x: m.dot(M3, x)),
    "einsum": (2, lambda m, x, y: m.einsum("ij,kj->ik", x, y) @ x * 0.1),
    "tensordot": (1, lambda m, x: m.tensordot(x, M4, axes=1)),
    "outer": (2, lambda m, x, y: x * m.outer(y[:, 0], y[0]) * 0.1),
    "solve": (1, lambda m, x: m.linalg.solve(I3 + 0.1 * m.dot(x, x.T), x)),
    "inv": (1, lambda m, x: m.dot(m.linalg.inv(I3 + 0.1 * m.dot(x, x.T)), x)),
    "det": (1, lambda m, x: x * m.linalg.det(I3 + 0.1 * m.dot(x, x.T))),
    # fft round trips
    "rfft": (1, lambda m, x: m.fft.irfft(m.fft.rfft(x, axis=1) * (1.0 + 0.5j), n=4, axis=1)),
    "fft_abs": (1, lambda m, x: m.abs(m.fft.fft(x + 0.1 * C, axis=0))),
}


def run(program, m, x, y):
    regs = [x, y]
    for name, srcs in program:
        arity, body = OPS[name]
        regs.append(body(m, *[regs[s] for s in srcs[:arity]]))
    return m.sum(m.tanh(regs[-1])) + 0.1 * m.sum(regs[-1] * regs[0])


def make_program(seed, length):
    rnd = random.Random(seed)
    names = sorted(OPS)
    program = []
    for k in range(length):
        name = rnd.choice(names)
        n_regs = 2 + k
        # favour recent registers so the composition is deep, not wide
        srcs = [max(0, n_regs - 1 - int(rnd.expovariate(0.7))) for _ in range(2)]
        program.append((name, srcs))
    return program


def close(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL * scale, err_msg=what)


SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(1, 6))
def test_random_compositions_agree_with_autograd(seed, length):
    program = make_program(seed, length)
    note(f"program: {program}")
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal(SHAPE), rng.standard_normal(SHAPE)
    v = rng.standard_normal(SHAPE)

    f_nb = lambda x, y: run(program, nnp, x, y)  # noqa: E731
    f_ag = lambda x, y: run(program, anp, x, y)  # noqa: E731
    close(f_nb(x, y), f_ag(x, y), "value")

    g_nb = nb.grad(f_nb, argnums=(0, 1))(x, y)
    g_ag = autograd.grad(f_ag, 0)(x, y), autograd.grad(f_ag, 1)(x, y)
    # Where autograd has no finite derivative (a kink hit exactly, e.g. std of x - x) the
    # conventions may differ; those programs say nothing about agreement.
    assume(np.all(np.isfinite(g_ag[0])) and np.all(np.isfinite(g_ag[1])))
    close(g_nb[0], g_ag[0], "grad x")
    close(g_nb[1], g_ag[1], "grad y")

    jv = nb.jvp(lambda x: f_nb(x, y), (x,), (v,))[1]
    close(jv, np.sum(g_ag[0] * v), "jvp")

    hv_ag = autograd.hessian_vector_product(lambda x: f_ag(x, y))(x, v)
    assume(np.all(np.isfinite(hv_ag)))
    hv_fr = nb.hvp(lambda x: f_nb(x, y), x, v)
    hv_rr = nb.grad(lambda x: nnp.sum(nb.grad(lambda z: f_nb(z, y))(x) * v))(x)
    close(hv_fr, hv_ag, "hvp forward-over-reverse")
    close(hv_rr, hv_ag, "hvp reverse-over-reverse")


def test_every_op_runs_on_both_sides():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(SHAPE), rng.standard_normal(SHAPE)
    for name in OPS:
        program = [(name, [0, 1])]
        close(run(program, nnp, x, y), run(program, anp, x, y), name)
        close(nb.grad(lambda x: run(program, nnp, x, y))(x),
              autograd.grad(lambda x: run(program, anp, x, y))(x), f"grad of {name}")
