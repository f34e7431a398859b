"""Products of arrays: matmul, einsum, tensordot, dot, inner, outer, vdot, kron, cross.

Two primitives carry every rule: ``matmul`` and ``einsum``.  The VJP of an
einsum operand is an einsum of the cotangent with the other operands, and its
JVP the same einsum with the operand replaced by its tangent, so both
differentiate again to any order.  ``tensordot``, ``dot`` beyond 2-D and
``inner`` are einsums; ``outer``, ``kron`` and ``cross`` are products of
reshaped or sliced arrays.  For complex arrays no conjugation enters (HIPS
autograd's convention, see :mod:`nablab.numpy.ufuncs`); ``vdot`` conjugates its
first argument, as NumPy's does.
"""

from __future__ import annotations

import string

import numpy as np

from nablab.autodiff.core import Primitive, RulesForAnyArgument, primitive, raw_value_of, shape_of, value_of
from nablab.numpy.reductions import normalize_axis
from nablab.numpy.shape import as_array, broadcast_to, expand_dims, moveaxis, ravel, reshape, stack, swapaxes
from nablab.numpy.ufuncs import _is_complex, conj, unbroadcast


def _ndim(x):
    return len(shape_of(x))


def _no_out(name, out):
    if out is not None:
        raise TypeError(f"{name}(..., out=...) is not supported; use the returned value")


# --------------------------------------------------------------------------- matmul


def _matmul_vjp_a(g, ans, a, b):
    a_shape, b_shape = shape_of(a), shape_of(b)
    if len(a_shape) == 1 and len(b_shape) == 1:
        return unbroadcast(g * b, a)
    if len(b_shape) == 1:  # (..., n) @ (n,) -> (...,)
        return unbroadcast(expand_dims(g, -1) * b, a)
    if len(a_shape) == 1:  # (n,) @ (..., n, m) -> (..., m)
        return unbroadcast(matmul(b, expand_dims(g, -1))[..., 0], a)
    return unbroadcast(matmul(g, swapaxes(b, -1, -2)), a)


def _matmul_vjp_b(g, ans, a, b):
    a_shape, b_shape = shape_of(a), shape_of(b)
    if len(a_shape) == 1 and len(b_shape) == 1:
        return unbroadcast(g * a, b)
    if len(a_shape) == 1:  # (n,) @ (..., n, m): db[..., i, j] = a_i g[..., j]
        return unbroadcast(expand_dims(a, -1) * expand_dims(g, -2), b)
    if len(b_shape) == 1:  # (..., k, n) @ (n,): db = sum over the batch of a^T g, with no (k, n) temporary
        per_batch = matmul(swapaxes(a, -1, -2), expand_dims(g, -1))[..., 0]
        return unbroadcast(per_batch, b)
    if len(a_shape) == len(b_shape) == 2 and _transposed_layout(b):
        # b is a transposed view (a weight w used as w.T): compute (g^T a)^T, whose transpose has w's C layout,
        # so w's gradient comes out C-contiguous instead of as a transposed view for every later step to copy
        return unbroadcast(swapaxes(matmul(swapaxes(g, -1, -2), a), -1, -2), b)  # (real part for a real b)
    return unbroadcast(matmul(swapaxes(a, -1, -2), g), b)


def _transposed_layout(x):
    """Whether a 2-D array is laid out column by column (Fortran order: a transposed view of a C-contiguous array,
    or an array stored that way) and not also row by row."""
    x = raw_value_of(x)
    return isinstance(x, np.ndarray) and x.ndim == 2 and not x.flags.c_contiguous and x.flags.f_contiguous


_matmul_p = primitive(np.matmul, name="matmul")
_matmul_p.defvjp(_matmul_vjp_a, _matmul_vjp_b)
_matmul_p.defjvp(lambda t, ans, a, b: _matmul_p(t, b), lambda t, ans, a, b: _matmul_p(a, t))


def matmul(x1, x2, out=None, **kwargs):
    """``np.matmul`` (``@``): batched matrix products, 1-D operands as vectors."""
    _no_out("matmul", out)
    x1, x2 = as_array(x1), as_array(x2)
    if _ndim(x1) == 0 or _ndim(x2) == 0:
        raise ValueError("matmul: input operand does not have enough dimensions (use * for scalars)")
    return _matmul_p(x1, x2)


# --------------------------------------------------------------------------- einsum
#
# The public function turns any subscripts NumPy accepts (implicit output,
# ellipses, the sublist form) into a *canonical* spec: one string of letters per
# operand and one for the output, with every ellipsis spelled out in letters of
# its own and every operand already broadcast to the sizes it shares.  The
# primitive sees only canonical specs, so its rules can build new einsums by
# rearranging letters.

_LETTERS = string.ascii_letters


def _letter_sizes(operands, ins):
    sizes = {}
    for op, sub in zip(operands, ins):
        for letter, n in zip(sub, shape_of(op)):
            sizes[letter] = n
    return sizes


def _should_optimize(operands, ins):
    # NumPy's own loops are fastest for small products; pairwise BLAS contractions
    # (optimize=True) pay off for three operands or a large iteration space.
    if len(operands) > 2:
        return "greedy"
    space = 1
    for n in _letter_sizes(operands, ins).values():
        space *= max(n, 1)
    return "greedy" if space > 1 << 15 else False


def _einsum(*operands, spec):
    ins, out = spec
    return np.einsum(",".join(ins) + "->" + out, *operands, optimize=_should_optimize(operands, ins))


def _fresh_letters(used):
    return iter(letter for letter in _LETTERS if letter not in used)


def _einsum_vjp(k):
    def rule(g, ans, *operands, spec):
        ins, out = spec
        target = ins[k]
        sizes = _letter_sizes(operands, ins)
        gv = np.asarray(value_of(g))
        real = gv.real.dtype if gv.dtype.kind in "fc" else np.float64
        fresh = _fresh_letters(set("".join(ins)) | set(out))
        subs = [out] + [s for j, s in enumerate(ins) if j != k]
        args = [g] + [op for j, op in enumerate(operands) if j != k]
        # A letter repeated in the operand ('ii') is a diagonal: the cotangent is
        # spread onto it with an identity matrix joining the repeat to a new letter.
        result_sub = []
        for letter in target:
            if letter in result_sub:
                new = next(fresh)
                subs.append(letter + new)
                args.append(np.eye(sizes[letter], dtype=real))
                result_sub.append(new)
            else:
                result_sub.append(letter)
        # A letter only this operand has was summed away: the cotangent is constant along it.
        covered = set("".join(subs))
        for letter in dict.fromkeys(target):
            if letter not in covered:
                subs.append(letter)
                args.append(np.ones(sizes[letter], dtype=real))
        result = _einsum_p(*args, spec=(tuple(subs), "".join(result_sub)))
        return unbroadcast(result, operands[k])  # the real part for a real operand

    return rule


def _einsum_jvp(k):
    def rule(t, ans, *operands, spec):
        args = list(operands)
        args[k] = t
        return _einsum_p(*args, spec=spec)

    return rule


_einsum_p = Primitive(_einsum, name="einsum")
_einsum_p.vjps = RulesForAnyArgument(_einsum_vjp)
_einsum_p.jvps = RulesForAnyArgument(_einsum_jvp)


def _sublists_to_subscripts(args):
    """The sublist form ``einsum(a, [0, 1], b, [1, 2], [0, 2])`` as a subscript string and operands."""
    operands, terms = [], []

    def term(sublist):
        parts = []
        for s in sublist:
            if s is Ellipsis:
                parts.append("...")
            elif isinstance(s, (int, np.integer)) and 0 <= int(s) < len(_LETTERS):
                parts.append(_LETTERS[int(s)])
            else:
                raise ValueError(f"einsum: subscript {s!r} in a sublist must be an int in [0, 52) or ...")
        return "".join(parts)

    args = list(args)
    while len(args) >= 2:
        operands.append(args.pop(0))
        terms.append(term(args.pop(0)))
    subscripts = ",".join(terms)
    if args:
        subscripts += "->" + term(args[0])
    return subscripts, operands


def _canonical(subscripts, operands):
    """Letters for every axis: ``(ins, out)`` with ellipses spelled out, and the operands broadcast."""
    subscripts = subscripts.replace(" ", "")
    if "->" in subscripts:
        lhs, out = subscripts.split("->")
        explicit = True
    else:
        lhs, out, explicit = subscripts, None, False
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise ValueError(
            f"einsum: subscripts {subscripts!r} name {len(terms)} operand(s) but {len(operands)} were given"
        )
    for t in terms + ([out] if explicit else []):
        rest = t.replace("...", "")
        if "." in rest or not all(c in _LETTERS for c in rest):
            raise ValueError(f"einsum: invalid subscripts {t!r} in {subscripts!r}")
    used = set(lhs.replace(".", "") + (out or "").replace(".", ""))
    fresh = _fresh_letters(used)
    # Ellipsis axes are right-aligned across operands, as in broadcasting.
    ell_ndims = []
    for t, op in zip(terms, operands):
        n_named = len(t.replace("...", ""))
        nd = _ndim(op)
        if "..." in t:
            if nd < n_named:
                raise ValueError(f"einsum: operand of shape {shape_of(op)} has fewer axes than {t!r} names")
            ell_ndims.append(nd - n_named)
        else:
            if nd != n_named:
                raise ValueError(
                    f"einsum: subscripts {t!r} name {n_named} axes but the operand has shape {shape_of(op)}"
                )
            ell_ndims.append(0)
    n_ell = max(ell_ndims, default=0)
    ell_letters = "".join(next(fresh) for _ in range(n_ell))
    ins = []
    for t, e in zip(terms, ell_ndims):
        ins.append(t.replace("...", ell_letters[n_ell - e:]) if "..." in t else t)
    if explicit:
        if "..." in out:
            out = out.replace("...", ell_letters)
        elif n_ell:
            raise ValueError(
                f"einsum: output {subscripts!r} has no '...' but the operands' ellipses cover axes"
            )
        if len(set(out)) != len(out):
            raise ValueError(f"einsum: output subscript {out!r} repeats a letter")
        missing = set(out) - set("".join(ins))
        if missing:
            raise ValueError(f"einsum: output letters {sorted(missing)} appear in no operand")
    else:
        counts = {}
        for letter in "".join(ins):
            counts[letter] = counts.get(letter, 0) + 1
        out = ell_letters + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell_letters))
    # Sizes per letter; size-1 axes broadcast against the others, as NumPy allows.
    sizes = {}
    for t, op in zip(ins, operands):
        for letter, n in zip(t, shape_of(op)):
            if sizes.get(letter, 1) == 1:
                sizes[letter] = n
            elif n not in (1, sizes[letter]):
                raise ValueError(
                    f"einsum: axis {letter!r} has size {n} in one operand and {sizes[letter]} in another"
                )
    broadcast = []
    for t, op in zip(ins, operands):
        shape = tuple(sizes[c] for c in t)
        if shape != shape_of(op):
            if len(set(t)) != len(t):
                raise ValueError(f"einsum: cannot broadcast operand {t!r} with a repeated letter")
            op = broadcast_to(op, shape)
        broadcast.append(op)
    return (tuple(ins), out), broadcast


def einsum(*operands, out=None, optimize=False, dtype=None, order="K", casting="safe"):
    """``np.einsum``: explicit or implicit output, ellipses, repeated letters, the sublist form.

    ``optimize`` is accepted and decided by nablab (BLAS for large products);
    ``dtype`` casts the operands first.
    """
    _no_out("einsum", out)
    if order != "K" or casting != "safe":
        raise NotImplementedError("einsum: order= and casting= other than the defaults are not supported")
    if not operands:
        raise ValueError("einsum: needs subscripts and at least one operand")
    if isinstance(operands[0], str):
        subscripts, arrays = operands[0], list(operands[1:])
    else:
        subscripts, arrays = _sublists_to_subscripts(operands)
    arrays = [as_array(a) for a in arrays]
    if dtype is not None:
        from nablab.numpy.ufuncs import _astype_entry
        arrays = [_astype_entry(a, dtype) for a in arrays]
    spec, arrays = _canonical(subscripts, arrays)
    return _einsum_p(*arrays, spec=spec)


def _letters_einsum(a_sub, b_sub, out_sub, a, b):
    return _einsum_p(a, b, spec=((a_sub, b_sub), out_sub))


# --------------------------------------------------------------------------- tensordot, dot, inner


def _axes_list(axes, ndim):
    if isinstance(axes, (int, np.integer)):
        axes = [axes]
    return list(normalize_axis(tuple(int(a) for a in axes), ndim)) if ndim else [int(a) for a in axes]


def tensordot(a, b, axes=2):
    """``np.tensordot``: ``axes`` an int N (last N of ``a`` with first N of ``b``) or a pair of axis lists."""
    a, b = as_array(a), as_array(b)
    na, nb = _ndim(a), _ndim(b)
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        if n < 0 or n > min(na, nb):
            raise ValueError(f"tensordot: axes={n} does not fit shapes {shape_of(a)} and {shape_of(b)}")
        a_axes, b_axes = list(range(na - n, na)), list(range(n))
    else:
        try:
            a_axes, b_axes = axes
        except (TypeError, ValueError):
            raise ValueError(f"tensordot: axes must be an int or a pair of axis lists, got {axes!r}") from None
        a_axes, b_axes = _axes_list(a_axes, na), _axes_list(b_axes, nb)
        if len(a_axes) != len(b_axes):
            raise ValueError(f"tensordot: axes {axes!r} pair {len(a_axes)} axes of a with {len(b_axes)} of b")
    sa, sb = shape_of(a), shape_of(b)
    for i, j in zip(a_axes, b_axes):
        if sa[i] != sb[j]:
            raise ValueError(
                f"tensordot: shape mismatch: axis {i} of {sa} has length {sa[i]}, axis {j} of {sb} has {sb[j]}"
            )
    letters = iter(_LETTERS)
    a_sub = [next(letters) for _ in range(na)]
    b_sub = [next(letters) for _ in range(nb)]
    for i, j in zip(a_axes, b_axes):
        b_sub[j] = a_sub[i]
    out_sub = [c for i, c in enumerate(a_sub) if i not in a_axes] + [
        c for j, c in enumerate(b_sub) if j not in b_axes
    ]
    return _letters_einsum("".join(a_sub), "".join(b_sub), "".join(out_sub), a, b)


def dot(a, b, out=None):
    """``np.dot``: products of scalars, matrix products up to 2-D, and beyond a sum over
    the last axis of ``a`` and the second-to-last of ``b``."""
    _no_out("dot", out)
    a, b = as_array(a), as_array(b)
    na, nb = _ndim(a), _ndim(b)
    if na == 0 or nb == 0:
        return a * b
    if na <= 2 and nb <= 2:
        return matmul(a, b)
    return tensordot(a, b, axes=([na - 1], [max(nb - 2, 0)]))


def inner(a, b):
    """``np.inner``: a sum over the last axes of both (N-D too); scalars multiply."""
    a, b = as_array(a), as_array(b)
    if _ndim(a) == 0 or _ndim(b) == 0:
        return a * b
    return tensordot(a, b, axes=([-1], [-1]))


def outer(a, b, out=None):
    """``np.outer`` of the flattened inputs."""
    _no_out("outer", out)
    return reshape(as_array(a), (-1, 1)) * reshape(as_array(b), (1, -1))


def vdot(a, b):
    """``np.vdot``: the flattened dot product, with ``a`` conjugated if complex."""
    a, b = ravel(as_array(a)), ravel(as_array(b))
    if shape_of(a) != shape_of(b):
        raise ValueError(f"vdot: inputs have {shape_of(a)[0]} and {shape_of(b)[0]} elements")
    if _is_complex(a):
        a = conj(a)
    return _letters_einsum("i", "i", "", a, b)


# --------------------------------------------------------------------------- kron, cross


def kron(a, b):
    """``np.kron``: the Kronecker product (the smaller input gains leading axes of length 1)."""
    a, b = as_array(a), as_array(b)
    sa, sb = shape_of(a), shape_of(b)
    nd = max(len(sa), len(sb))
    if nd == 0:
        return a * b
    sa = (1,) * (nd - len(sa)) + sa
    sb = (1,) * (nd - len(sb)) + sb
    # a[i0, 1, i1, 1, ...] * b[1, j0, 1, j1, ...] has axes (i0, j0, i1, j1, ...): merge pairs.
    a_inter = reshape(a, tuple(d for n in sa for d in (n, 1)))
    b_inter = reshape(b, tuple(d for n in sb for d in (1, n)))
    return reshape(a_inter * b_inter, tuple(x * y for x, y in zip(sa, sb)))


def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """``np.cross`` of 2- or 3-vectors along ``axisa``/``axisb``, result along ``axisc`` (``axis`` sets all)."""
    a, b = as_array(a), as_array(b)
    if axis is not None:
        axisa = axisb = axisc = axis
    a = moveaxis(a, int(axisa), -1)
    b = moveaxis(b, int(axisb), -1)
    na, nb = shape_of(a)[-1], shape_of(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError(
            f"cross: incompatible dimensions for cross product (dimension must be 2 or 3), got {na} and {nb}"
        )
    ax, ay = a[..., 0], a[..., 1]
    bx, by = b[..., 0], b[..., 1]
    z = ax * by - ay * bx
    if na == 2 and nb == 2:
        return z
    if na == 3 and nb == 3:
        az, bz = a[..., 2], b[..., 2]
        x, y = ay * bz - az * by, az * bx - ax * bz
    elif na == 3:  # b has no z component
        az = a[..., 2]
        x, y = -(az * by), az * bx
    else:  # a has no z component
        bz = b[..., 2]
        x, y = ay * bz, -(ax * bz)
    shape = np.broadcast_shapes(shape_of(x), shape_of(y), shape_of(z))
    c = stack([broadcast_to(x, shape), broadcast_to(y, shape), broadcast_to(z, shape)], axis=-1)
    return moveaxis(c, -1, normalize_axis(int(axisc), _ndim(c))[0])


__all__ = ["matmul", "einsum", "tensordot", "dot", "inner", "outer", "vdot", "kron", "cross"]
