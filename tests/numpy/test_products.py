"""nablab.numpy products (einsum, tensordot, dot, inner, outer, vdot, kron, cross, matmul):
values as NumPy's, derivatives against finite differences (both modes, second order),
HIPS autograd (complex convention) and torch.func."""

import autograd
import autograd.numpy as anp
import numpy as onp
import pytest
from hypothesis import given, settings, strategies as st

import nablab
import nablab.numpy as np
from nablab import gradcheck

rng = onp.random.default_rng(0)


def R(*shape):
    return rng.standard_normal(shape)


def C(*shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


# ----------------------------------------------------------------------------- einsum

EINSUM_CASES = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),  # implicit output
    ("ij->ji", [(3, 4)]),
    ("ii->i", [(3, 3)]),  # diagonal
    ("ii", [(3, 3)]),  # trace
    ("iij->ji", [(3, 3, 2)]),
    ("iii->i", [(2, 2, 2)]),
    ("ij->", [(3, 4)]),
    ("ijk,lji->lki", [(3, 4, 4), (4, 4, 3)]),
    ("ijk,lji,lli->lki", [(3, 4, 4), (4, 4, 3), (4, 4, 3)]),  # three operands, a repeat in one
    ("...ij,...jk->...ik", [(2, 3), (5, 3, 4)]),  # ellipses of different lengths
    ("j...k,lj...->lk...", [(2, 3, 2), (4, 2, 3)]),
    ("...,...", [(2, 3), (3,)]),
    ("i,i->i", [(1,), (3,)]),  # a size-1 axis broadcasts
    ("...k,...nk->...", [(1, 5), (3, 2, 5)]),
    ("k,nk->", [(5,), (4, 5)]),
    ("ij,k", [(3, 4), (3,)]),
    ("ba", [(2, 3)]),
    (" i j , j k -> i k ", [(2, 3), (3, 2)]),
]


@pytest.mark.parametrize("subscripts,shapes", EINSUM_CASES)
def test_einsum_values_match_numpy(subscripts, shapes):
    ops = [R(*s) for s in shapes]
    onp.testing.assert_allclose(np.einsum(subscripts, *ops), onp.einsum(subscripts, *ops), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("subscripts,shapes", EINSUM_CASES)
def test_einsum_gradcheck_second_order(subscripts, shapes):
    ops = [R(*s) for s in shapes]
    gradcheck(lambda *xs: np.einsum(subscripts, *xs), *ops)


def test_einsum_complex_and_mixed_operands():
    gradcheck(lambda a, b: np.einsum("ij,jk->ik", a, b), C(2, 3), R(3, 4))
    gradcheck(lambda a, b: np.einsum("ii,ij->j", a, b), C(3, 3), C(3, 2))


def test_einsum_sublist_form():
    a, b = R(2, 3), R(2, 3, 4)
    got = np.einsum(a, [Ellipsis, 0, 1], b, [Ellipsis, 1, 2], [Ellipsis, 0, 2])
    onp.testing.assert_allclose(got, onp.einsum(a, [Ellipsis, 0, 1], b, [Ellipsis, 1, 2], [Ellipsis, 0, 2]))
    gradcheck(lambda x, y: np.einsum(x, [0, 1], y, [3, 1, 0], [3, 0]), R(3, 4), R(2, 4, 3))
    onp.testing.assert_allclose(np.einsum(a, [1, 0]), a.T)


def test_einsum_large_product_uses_blas_and_agrees():
    a, b = R(60, 70), R(70, 50)
    onp.testing.assert_allclose(np.einsum("ij,jk->ik", a, b), a @ b, rtol=1e-12, atol=1e-12)
    g = R(60, 50)
    _, vjp = nablab.vjp(lambda x: np.einsum("ij,jk->ik", x, b), a)
    onp.testing.assert_allclose(vjp(g)[0], g @ b.T, rtol=1e-12, atol=1e-12)


def test_einsum_under_numpy_dispatch():
    # Plain NumPy's einsum on a traced value reaches nablab's.
    g = nablab.grad(lambda x: onp.einsum("ii", x))(R(3, 3))
    onp.testing.assert_array_equal(g, onp.eye(3))


@pytest.mark.parametrize("call,match", [
    (lambda: np.einsum("ij,jk->ik", R(2, 3), R(4, 2)), "size"),
    (lambda: np.einsum("ij,jk->ik", R(2, 3)), "operand"),
    (lambda: np.einsum("ij->ik", R(2, 3)), "appear in no operand"),
    (lambda: np.einsum("ij->ii", R(2, 2)), "repeats"),
    (lambda: np.einsum("ijk->ij", R(2, 2)), "name 3 axes"),
    (lambda: np.einsum("...i->i", R(2, 3)), r"\.\.\."),
    (lambda: np.einsum("i1->i", R(2, 3)), "invalid"),
])
def test_einsum_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_einsum_refuses_out():
    with pytest.raises(TypeError, match="out"):
        np.einsum("ii", R(2, 2), out=onp.zeros(()))


# ----------------------------------------------------------------------------- tensordot, dot, inner, outer, vdot

TENSORDOT_CASES = [
    ((2, 3, 4), (3, 4, 5), 2),
    ((2, 3), (3, 4), 1),
    ((4,), (), 0),
    ((2, 6), (6, 3), ([-1], [0])),
    ((2, 6), (6, 3), (-1, 0)),
    ((2,), (2, 2), (0, 1)),
    ((2, 3, 4), (1, 2, 3), ([0, 1], [1, 2])),
    ((2, 3, 4), (2, 2, 3, 4), ([1, 0], [2, 1])),
]


@pytest.mark.parametrize("sa,sb,axes", TENSORDOT_CASES)
def test_tensordot_values_and_gradcheck(sa, sb, axes):
    a, b = R(*sa), R(*sb)
    onp.testing.assert_allclose(np.tensordot(a, b, axes), onp.tensordot(a, b, axes), rtol=1e-13, atol=1e-13)
    gradcheck(lambda x, y: np.tensordot(x, y, axes), a, b)


def test_tensordot_shape_mismatch_is_named():
    with pytest.raises(ValueError, match="shape mismatch"):
        np.tensordot(R(2, 3), R(4, 5), axes=([1], [0]))
    with pytest.raises(ValueError, match="axes"):
        np.tensordot(R(2, 3), R(3, 5), axes=5)


DOT_SHAPES = [((), (3,)), ((3,), ()), ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
              ((2, 2, 3), (3,)), ((2, 2, 3), (2, 3, 4)), ((3,), (2, 3, 4)), ((4, 3), (2, 3, 5))]


@pytest.mark.parametrize("sa,sb", DOT_SHAPES)
def test_dot_values_and_gradcheck(sa, sb):
    a, b = R(*sa), C(*sb)
    onp.testing.assert_allclose(np.dot(a, b), onp.dot(a, b), rtol=1e-13, atol=1e-13)
    gradcheck(np.dot, a, b)


@pytest.mark.parametrize("sa,sb", [((), (3,)), ((3,), (3,)), ((2, 3), (3,)), ((2, 3), (4, 3)), ((2, 2, 3), (4, 3))])
def test_inner_values_and_gradcheck(sa, sb):
    a, b = R(*sa), R(*sb)
    onp.testing.assert_allclose(np.inner(a, b), onp.inner(a, b), rtol=1e-13, atol=1e-13)
    gradcheck(np.inner, a, b)


def test_outer_and_vdot():
    a, b = C(2, 3), C(6)
    onp.testing.assert_allclose(np.outer(a, b), onp.outer(a, b))
    onp.testing.assert_allclose(np.vdot(a, b), onp.vdot(a, b))
    gradcheck(np.outer, a, R(4))
    gradcheck(np.vdot, a, b)
    gradcheck(np.vdot, R(2, 2), R(4))
    with pytest.raises(ValueError, match="elements"):
        np.vdot(R(3), R(4))


def test_vdot_conjugates_its_first_argument():
    # f(z) = Re(sum(conj(z) w)) = sum(x w_r + y w_i): autograd's gradient df/dx - i df/dy is conj(w).
    z, w = C(3), C(3)
    g = nablab.grad(lambda u: np.real(np.vdot(u, w)))(z)
    onp.testing.assert_allclose(g, onp.conj(w), rtol=1e-13)


# ----------------------------------------------------------------------------- kron, cross

KRON_SHAPES = [((2, 2), (3, 3)), ((3,), (2,)), ((3, 1), (1, 2)), ((), (2, 2)), ((2,), (2, 3)), ((2, 1, 2), (2, 2))]


@pytest.mark.parametrize("sa,sb", KRON_SHAPES)
def test_kron_values_and_gradcheck(sa, sb):
    a, b = R(*sa), C(*sb)
    onp.testing.assert_allclose(np.kron(a, b), onp.kron(a, b), rtol=1e-14)
    gradcheck(np.kron, a, b)


CROSS_CASES = [
    ((3,), (3,), {}), ((2,), (2,), {}), ((2,), (3,), {}), ((3,), (2,), {}),
    ((4, 3), (3,), {}), ((3, 4), (4, 3), {"axisa": 0}), ((3, 4), (3, 4), {"axis": 0}),
    ((3, 3), (3, 3), {"axisa": 0, "axisb": 1, "axisc": 0}), ((2, 5, 3), (5, 3), {"axisc": 1}),
    ((5, 2), (5, 2), {}),
]


@pytest.mark.parametrize("sa,sb,kwargs", CROSS_CASES)
def test_cross_values_and_gradcheck(sa, sb, kwargs):
    a, b = R(*sa), R(*sb)
    onp.testing.assert_allclose(np.cross(a, b, **kwargs), onp.cross(a, b, **kwargs), rtol=1e-13, atol=1e-13)
    gradcheck(lambda x, y: np.cross(x, y, **kwargs), a, b)


def test_cross_bad_dimension_is_named():
    with pytest.raises(ValueError, match="2 or 3"):
        np.cross(R(4), R(3))


# ----------------------------------------------------------------------------- matmul

@pytest.mark.parametrize("sa,sb", [((3,), (3,)), ((2, 3), (3,)), ((3,), (2, 3, 4)), ((1, 2, 3), (4, 3, 2)),
                                   ((5, 2, 3), (3,))])
def test_matmul_gradcheck(sa, sb):
    gradcheck(np.matmul, C(*sa), R(*sb))


def test_matmul_refuses_scalars_and_out():
    with pytest.raises(ValueError, match="dimensions"):
        np.matmul(R(3), 2.0)
    with pytest.raises(TypeError, match="out"):
        np.matmul(R(2, 2), R(2, 2), out=onp.zeros((2, 2)))


# ----------------------------------------------------------------------------- against HIPS autograd

AUTOGRAD_CASES = [
    ("einsum", lambda m, a, b: m.einsum("ijk,lji->lki", a, b), (3, 4, 4), (4, 4, 3)),
    ("einsum_implicit", lambda m, a, b: m.einsum("ijk,ik", a, b), (3, 2, 4), (3, 4)),  # autograd has no repeated letters
    ("einsum_ellipsis", lambda m, a, b: m.einsum("...ij,...jk->...ik", a, b), (2, 3), (4, 3, 2)),
    ("tensordot", lambda m, a, b: m.tensordot(a, b, ([0, 2], [2, 0])), (3, 2, 4), (4, 5, 3)),
    ("dot", lambda m, a, b: m.dot(a, b), (2, 2, 3), (2, 3, 4)),
    ("inner", lambda m, a, b: m.inner(a, b), (2, 3), (4, 3)),
    ("outer", lambda m, a, b: m.outer(a, b), (3,), (4,)),
    ("kron", lambda m, a, b: m.kron(a, b), (2, 3), (3, 2)),
    ("cross", lambda m, a, b: m.cross(a, b, axisa=0, axisc=0), (3, 4), (4, 3)),
    ("matmul", lambda m, a, b: m.matmul(a, b), (2, 3, 4), (4,)),
]


def _random(r, shape, complex_):
    x = r.standard_normal(shape)
    return x + 1j * r.standard_normal(shape) if complex_ else x


@pytest.mark.parametrize("name,f,sa,sb", AUTOGRAD_CASES)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), complex_a=st.booleans(), complex_b=st.booleans())
def test_vjps_match_autograd(name, f, sa, sb, seed, complex_a, complex_b):
    r = onp.random.default_rng(seed)
    a, b = _random(r, sa, complex_a), _random(r, sb, complex_b)
    out = f(np, a, b)
    onp.testing.assert_allclose(out, f(anp, a, b), rtol=1e-12, atol=1e-12)
    g = _random(r, onp.shape(out), onp.iscomplexobj(out))
    for argnum in (0, 1):
        _, nb_vjp = nablab.vjp(lambda *xs: f(np, *xs), a, b)
        got = nb_vjp(g)[argnum]
        want = autograd.make_vjp(lambda x, y: f(anp, x, y), argnum)(a, b)[0](g)
        if not onp.iscomplexobj((a, b)[argnum]):
            # A real input's cotangent is real (autograd's inner, cross and einsum leave it complex).
            assert not onp.iscomplexobj(got)
            want = onp.real(want)
        onp.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name,f,sa,sb", AUTOGRAD_CASES)
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_hessian_of_a_loss_matches_autograd(name, f, sa, sb, seed):
    r = onp.random.default_rng(seed)
    a, b = r.standard_normal(sa), r.standard_normal(sb)

    def loss(m, x):
        return m.sum(m.sin(f(m, x, b * x.sum())))

    onp.testing.assert_allclose(nablab.hessian(lambda x: loss(np, x))(a),
                                autograd.hessian(lambda x: loss(anp, x))(a), rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- against torch.func

torch = pytest.importorskip("torch")
tfn = pytest.importorskip("torch.func")

TORCH_CASES = [
    ("einsum", lambda a, b: np.einsum("bij,jk->bik", a, b), lambda a, b: torch.einsum("bij,jk->bik", a, b),
     (2, 3, 4), (4, 2)),
    ("einsum_trace", lambda a, b: np.einsum("ii,i->i", a, b), lambda a, b: torch.einsum("ii,i->i", a, b),
     (3, 3), (3,)),
    ("tensordot", lambda a, b: np.tensordot(a, b, ([1, 2], [0, 1])), lambda a, b: torch.tensordot(a, b, ([1, 2], [0, 1])),
     (2, 3, 4), (3, 4, 2)),
    ("kron", np.kron, torch.kron, (2, 3), (2, 2)),
    ("cross", lambda a, b: np.cross(a, b), lambda a, b: torch.linalg.cross(a, b), (4, 3), (4, 3)),
    ("inner", np.inner, torch.inner, (2, 3), (4, 3)),
    ("outer", np.outer, torch.outer, (3,), (4,)),
    ("vdot", np.vdot, torch.vdot, (5,), (5,)),
]


@pytest.mark.parametrize("name,nb_f,t_f,sa,sb", TORCH_CASES)
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_jacobians_jvps_and_hvps_match_torch(name, nb_f, t_f, sa, sb, seed):
    r = onp.random.default_rng(seed)
    a, b, va = r.standard_normal(sa), r.standard_normal(sb), r.standard_normal(sa)
    ta, tb, tva = torch.tensor(a), torch.tensor(b), torch.tensor(va)
    onp.testing.assert_allclose(nb_f(a, b), t_f(ta, tb).numpy(), rtol=1e-12, atol=1e-12)
    for argnum in (0, 1):
        got = nablab.jacrev(nb_f, argnum)(a, b)
        want = tfn.jacrev(t_f, argnum)(ta, tb).numpy()
        onp.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    _, jv = nablab.jvp(lambda x: nb_f(x, b), (a,), (va,))
    onp.testing.assert_allclose(jv, tfn.jvp(lambda x: t_f(x, tb), (ta,), (tva,))[1].numpy(), rtol=1e-10, atol=1e-10)

    # Hessian-vector product of a loss that uses the product twice (forward over reverse).
    def nb_loss(x):
        return np.sum(np.tanh(nb_f(x, b * np.sum(x))))

    def t_loss(x):
        return torch.sum(torch.tanh(t_f(x, tb * torch.sum(x))))

    got = nablab.jvp(nablab.grad(nb_loss), (a,), (va,))[1]
    want = tfn.jvp(tfn.grad(t_loss), (ta,), (tva,))[1].numpy()
    onp.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_a_weight_used_transposed_gets_its_gradient_in_its_own_layout():
    """``x @ w.T`` (a linear layer): w's gradient is computed as (g^T x), C-contiguous like w, not as a transposed
    view that every optimizer step would copy; the value is autograd's, and so is the second order."""
    x, w, g = R(5, 4), R(3, 4), R(5, 3)
    ours = nablab.grad(lambda w: np.sum(np.matmul(x, w.T) * g))(w)
    assert ours.flags.c_contiguous
    onp.testing.assert_allclose(ours, autograd.grad(lambda w: anp.sum(anp.matmul(x, w.T) * g))(w), rtol=1e-12)
    gradcheck(lambda x, w: np.matmul(x, w.T) ** 2, x, w)
    # and where w is laid out as its own transpose, the usual product (no layout to keep)
    wf = onp.asfortranarray(R(4, 3))
    onp.testing.assert_allclose(nablab.grad(lambda w: np.sum(np.matmul(x, w) * g))(wf), x.T @ g, rtol=1e-12)


def test_a_real_weight_used_transposed_keeps_a_real_gradient_against_a_complex_input():
    """The layout-keeping branch of matmul's rule still takes the real part for a real argument."""
    a = R(5, 4) + 1j * R(5, 4)
    w = R(3, 4)
    ours = nablab.grad(lambda w: np.sum(np.abs(np.matmul(a, w.T)) ** 2))(w)
    assert ours.dtype == onp.float64
    onp.testing.assert_allclose(ours, autograd.grad(lambda w: anp.sum(anp.abs(anp.matmul(a, w.T)) ** 2))(w),
                                rtol=1e-12)
