"""More differential operators, under the names HIPS autograd gives them.

They are thin compositions of :func:`~nablab.autodiff.transforms.vjp` and
:func:`~nablab.autodiff.transforms.jvp`, so code written for autograd runs
unchanged with ``import nablab.numpy as np`` and these imported from
``nablab``.  Each takes ``argnum`` (an int, or a tuple/list for several
arguments packed into one tuple).

>>> import numpy as np, nablab as nb
>>> nb.elementwise_grad(nb.sin)(np.array([0.0, np.pi]))
array([ 1., -1.])
>>> nb.deriv(lambda x: x ** 3)(2.0)
np.float64(12.0)
>>> vjp_fn, value = nb.make_vjp(lambda x: x * x)(3.0)
>>> value, vjp_fn(1.0)
(np.float64(9.0), np.float64(6.0))
"""

from __future__ import annotations

import inspect

import numpy as np

from nablab.autodiff import ops
from nablab.autodiff.core import shape_of, value_of
from nablab.autodiff.custom import checkpoint  # noqa: F401  (rematerialisation lives with the custom rules)
from nablab.autodiff.transforms import (
    _argnums_tuple,
    _check_scalar_output,
    _name_after,
    _value_and_grad,
    _wraps,
    grad,
    jacrev,
    jvp,
    vjp,
)

__all__ = [
    "elementwise_grad", "jacobian", "holomorphic_grad", "deriv", "make_vjp", "make_jvp",
    "make_hvp", "make_ggnvp", "hessian_tensor_product", "hessian_vector_product",
    "tensor_jacobian_product", "vector_jacobian_product", "grad_and_aux", "multigrad_dict",
    "grad_named", "checkpoint",
]


def _unary(f, argnum, args, kwargs, who):
    """``f`` as a function of the chosen argument(s) alone (a tuple for several)."""
    nums = _argnums_tuple(argnum, len(args), who)
    several = not isinstance(argnum, (int, np.integer))

    def restricted(x):
        full = list(args)
        for n, v in zip(nums, x if several else (x,)):
            full[n] = v
        return f(*full, **kwargs)

    x = tuple(args[n] for n in nums) if several else args[nums[0]]
    return restricted, x


def make_vjp(f, argnum=0):
    """``make_vjp(f)(*args) -> (vjp_fn, value)``: the value and a function of the cotangent.

    ``argnum`` picks the argument (an int, or a tuple for several).

    >>> import numpy as np, nablab as nb
    >>> vjp_fn, value = nb.make_vjp(lambda x: x ** 2)(np.array([1.0, 2.0]))
    >>> value, vjp_fn(np.array([1.0, 1.0]))
    (array([1., 4.]), array([2., 4.]))
    """
    argnum = tuple(argnum) if isinstance(argnum, list) else argnum

    @_wraps(f, _name_after("make_vjp", f, argnum))
    def wrapped(*args, **kwargs):
        fx, x = _unary(f, argnum, args, kwargs, "make_vjp")
        out, vjp_fn = vjp(fx, x)
        return (lambda g: vjp_fn(g)[0]), out

    return wrapped


def make_jvp(f, argnum=0):
    """``make_jvp(f)(*args)(v) -> (value, J v)``.

    ``argnum`` picks the argument; ``v`` is shaped like it.

    >>> import numpy as np, nablab as nb
    >>> nb.make_jvp(lambda x: x ** 2)(np.array([1.0, 2.0]))(np.array([1.0, 0.0]))
    (array([1., 4.]), array([2., 0.]))
    """
    argnum = tuple(argnum) if isinstance(argnum, list) else argnum

    @_wraps(f, _name_after("make_jvp", f, argnum))
    def wrapped(*args, **kwargs):
        fx, x = _unary(f, argnum, args, kwargs, "make_jvp")
        return lambda v: jvp(fx, (x,), (v,))

    return wrapped


def elementwise_grad(f, argnum=0):
    """The sum of the Jacobian's rows: the derivative of each output entry for elementwise ``f``.

    >>> import numpy as np, nablab as nb
    >>> nb.elementwise_grad(nb.tanh)(np.array([0.0, 1.0]))
    array([1.        , 0.41997434])
    """
    argnum = tuple(argnum) if isinstance(argnum, list) else argnum

    @_wraps(f, _name_after("elementwise_grad", f, argnum))
    def wrapped(*args, **kwargs):
        fx, x = _unary(f, argnum, args, kwargs, "elementwise_grad")
        out, vjp_fn = vjp(fx, x)
        if np.iscomplexobj(value_of(out)):
            raise TypeError("elementwise_grad: the function returned complex values; take their real part first")
        return vjp_fn(ops.ones_like(out))[0]

    return wrapped


def deriv(f, argnum=0):
    """Forward mode with a tangent of ones: ``f'(x)`` for a function of one number (elementwise).

    >>> import numpy as np, nablab as nb
    >>> nb.deriv(nb.sin)(np.array([0.0, np.pi]))
    array([ 1., -1.])
    """
    argnum = tuple(argnum) if isinstance(argnum, list) else argnum

    @_wraps(f, _name_after("deriv", f, argnum))
    def wrapped(*args, **kwargs):
        fx, x = _unary(f, argnum, args, kwargs, "deriv")
        ones = [ops.ones_like(v) for v in x] if isinstance(x, tuple) else ops.ones_like(x)
        return jvp(fx, (x,), (tuple(ones) if isinstance(x, tuple) else ones,))[1]

    return wrapped


def jacobian(f, argnum=0):
    """The Jacobian of shape ``out.shape + x.shape`` (reverse mode, like :func:`jacrev`).

    >>> import numpy as np, nablab as nb
    >>> nb.jacobian(lambda x: x ** 2)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    """
    return jacrev(f, argnum)


def holomorphic_grad(f, argnum=0):
    """The complex derivative ``f'(z)`` of a holomorphic ``f`` with one complex output.

    By autograd's convention it is the gradient of ``real(f)``: ``u_x - i u_y``,
    which for a holomorphic ``f = u + i v`` is ``f'(z)``.

    >>> import nablab as nb
    >>> complex(nb.holomorphic_grad(lambda z: z ** 2)(1.0 + 2.0j))
    (2+4j)
    """
    argnum = tuple(argnum) if isinstance(argnum, list) else argnum
    vg = _value_and_grad(f, argnum, "holomorphic_grad", allow_complex=True)

    @_wraps(f, _name_after("holomorphic_grad", f, argnum))
    def wrapped(*args, **kwargs):
        return vg(*args, **kwargs)[1]

    return wrapped


def make_hvp(f, argnum=0):
    """``make_hvp(f)(*args) -> (hvp_fn, grad)``: Hessian-vector products at one point, reusing its forward pass.

    >>> import numpy as np, nablab as nb
    >>> hvp_fn, g = nb.make_hvp(lambda x: nb.sum(x ** 3))(np.array([1.0, 2.0]))
    >>> g, hvp_fn(np.array([1.0, 1.0]))
    (array([ 3., 12.]), array([ 6., 12.]))
    """

    def wrapped(*args, **kwargs):
        fx, x = _unary(f, argnum, args, kwargs, "make_hvp")
        g, vjp_fn = vjp(grad(fx), x)
        return (lambda v: vjp_fn(v)[0]), g

    return wrapped


def hessian_tensor_product(f, argnum=0):
    """``hessian_tensor_product(f)(*args, v)``: ``H v``, with ``v`` shaped like the argument.

    >>> import numpy as np, nablab as nb
    >>> nb.hessian_tensor_product(lambda x: nb.sum(x ** 3))(np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    array([ 6., 12.])
    """

    def wrapped(*args, **kwargs):
        *primal, v = args
        fx, x = _unary(f, argnum, primal, kwargs, "hessian_tensor_product")
        return jvp(grad(fx), (x,), (v,))[1]

    return wrapped


hessian_vector_product = hessian_tensor_product


def tensor_jacobian_product(f, argnum=0):
    """``tensor_jacobian_product(f)(*args, v)``: ``v`` contracted with the output axes of the Jacobian.

    With ``v`` shaped like the output it is the VJP ``v^T J``; with ``v`` shaped
    like the output's leading axes it is ``tensordot(v, J, v.ndim)``, one VJP
    per entry of the remaining output axes.

    >>> import numpy as np, nablab as nb
    >>> nb.tensor_jacobian_product(lambda x: x ** 2)(np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    array([2., 4.])
    """

    def wrapped(*args, **kwargs):
        *primal, v = args
        fx, x = _unary(f, argnum, primal, kwargs, "tensor_jacobian_product")
        out, vjp_fn = vjp(fx, x)
        k = np.ndim(value_of(v))
        if shape_of(out) == shape_of(v):
            return vjp_fn(v)[0]
        if shape_of(out)[:k] != shape_of(v):
            raise ValueError(
                f"tensor_jacobian_product: v has shape {shape_of(v)}, which is neither the output's "
                f"shape {shape_of(out)} nor its leading axes"
            )
        return jacrev(lambda y: ops.tensordot(v, fx(y), k))(x)

    return wrapped


vector_jacobian_product = tensor_jacobian_product


def make_ggnvp(f, g=None, f_argnum=0):
    """Generalized Gauss-Newton products ``J^T H_g J v`` for ``g(f(x))`` (``g`` defaults to half the squared norm).

    ``f_argnum`` picks the argument of ``f``; the result is a function of ``f``'s arguments that
    returns ``v -> J^T H_g J v``.

    >>> import numpy as np, nablab as nb
    >>> A = np.array([[1.0, 2.0], [0.0, 1.0]])
    >>> ggnvp = nb.make_ggnvp(lambda x: A @ x)(np.zeros(2))
    >>> ggnvp(np.array([1.0, 0.0]))
    array([1., 2.])
    """
    if g is None:
        def g(y):
            return 0.5 * ops.sum(y * y, axis=-1)

    def ggnvp_maker(*args, **kwargs):
        fx, x = _unary(f, f_argnum, args, kwargs, "make_ggnvp")
        y, f_vjp = vjp(fx, x)
        _, g_hvp_grad = vjp(grad(g), y)

        def ggnvp(v):
            jv = jvp(fx, (x,), (v,))[1]
            return f_vjp(g_hvp_grad(jv)[0])[0]

        return ggnvp

    return ggnvp_maker


def grad_and_aux(f, argnum=0):
    """For ``f`` returning ``(value, aux)``: ``(gradient of value, aux)``.

    >>> import numpy as np, nablab as nb
    >>> g, aux = nb.grad_and_aux(lambda x: (nb.sum(x ** 2), "note"))(np.array([1.0, 2.0]))
    >>> g, aux
    (array([2., 4.]), 'note')
    """

    def wrapped(*args, **kwargs):
        fx, x = _unary(f, argnum, args, kwargs, "grad_and_aux")
        box = {}

        def value_only(v):
            value, box["aux"] = fx(v)
            return value

        out, vjp_fn = vjp(value_only, x)
        _check_scalar_output(out, "grad_and_aux")
        aux = box["aux"]
        return vjp_fn(ops.ones_like(out))[0], _plain(aux)

    return wrapped


def _plain(tree):
    from nablab.autodiff.tree import tree_map
    return tree_map(lambda v: value_of(v) if getattr(v, "_level", -1) > 0 else v, tree)


def multigrad_dict(f):
    """``multigrad_dict(f)(*args, **kwargs)``: a dict of gradients, one per named argument.

    >>> import nablab as nb
    >>> nb.multigrad_dict(lambda a, b: a * b ** 2)(2.0, 3.0)
    {'a': np.float64(9.0), 'b': np.float64(12.0)}
    """
    signature = inspect.signature(f)

    def wrapped(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        names = list(bound.arguments)

        def of_dict(values):
            bound_values = signature.bind_partial()
            bound_values.arguments.update(values)
            return f(*bound_values.args, **bound_values.kwargs)

        return grad(of_dict)(dict(bound.arguments)) if names else {}

    return wrapped


def grad_named(f, argname):
    """The gradient with respect to the argument called ``argname``.

    >>> import nablab as nb
    >>> float(nb.grad_named(lambda a, b: a * b ** 2, "b")(2.0, 3.0))
    12.0
    """
    position = list(inspect.signature(f).parameters).index(argname)
    return grad(f, position)
