"""Modules: parameters and state, layers against torch.nn with the same weights, functional calls."""

import numpy as np
import pytest
import torch

import nablab as nb
from nablab import nn

TOL = dict(rtol=1e-10, atol=1e-10)


def copy_into_torch(ours, theirs):
    state = ours.state_dict()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in state.items()}, strict=False)


def test_named_parameters_state_dict_and_load():
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=rng), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(),
                          nn.Linear(2 * 4 * 4, 3, rng=rng))
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias"]
    state = model.state_dict()
    assert set(state) == set(names) | {"1.running_mean", "1.running_var"}
    assert model.num_parameters() == 2 * 9 + 2 + 2 + 2 + 32 * 3 + 3
    other = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3))
    other.load_state_dict(state)
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6))
    np.testing.assert_array_equal(model(x).numpy(), other(x).numpy())
    state["4.weight"] = np.zeros((3, 5))
    with pytest.raises(ValueError, match=r"4.weight has shape \(3, 5\) in the state but \(3, 32\)"):
        other.load_state_dict(state)
    with pytest.raises(KeyError, match="missing"):
        other.load_state_dict({"0.weight": state["0.weight"]})


def test_layers_match_torch_modules_with_the_same_weights():
    rng = np.random.default_rng(1)
    ours = nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=1, padding=1, rng=rng), nn.BatchNorm2d(4), nn.LeakyReLU(0.1), nn.MaxPool2d(2),
        nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, rng=rng), nn.Tanh(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(2 * 4 * 4, 5, rng=rng), nn.Sigmoid(),
    )
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, stride=1, padding=1), torch.nn.BatchNorm2d(4), torch.nn.LeakyReLU(0.1),
        torch.nn.MaxPool2d(2), torch.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1),
        torch.nn.Tanh(), torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(32, 5), torch.nn.Sigmoid(),
    ).double()
    copy_into_torch(ours, theirs)
    x = np.random.default_rng(2).standard_normal((3, 3, 8, 8))
    out = ours(x)
    out.sum().backward() if isinstance(out, nb.Tensor) else None
    xt = torch.tensor(x)
    ref = theirs(xt)
    ref.sum().backward()
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), **TOL)
    for (name, p), (tname, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), **TOL)
    np.testing.assert_allclose(ours[1].running_var, theirs[1].running_var.numpy(), **TOL)
    ours.eval()
    theirs.eval()
    np.testing.assert_allclose(ours(x).numpy(), theirs(xt).detach().numpy(), **TOL)


def test_conv1d_module_and_default_init_ranges():
    layer = nn.Conv1d(2, 5, 4, stride=2, rng=3)
    bound = 1 / np.sqrt(2 * 4)
    assert np.abs(layer.weight.numpy()).max() <= bound and np.abs(layer.bias.numpy()).max() <= bound
    assert layer(np.ones((1, 2, 10))).shape == (1, 5, 4)
    t = nn.ConvTranspose2d(6, 4, 3, groups=2, rng=3)
    assert t.weight.shape == (6, 2, 3, 3) and t.bias.shape == (4,)
    assert np.abs(t.bias.numpy()).max() <= 1 / np.sqrt(2 * 9)


def test_functional_call_gives_gradients_for_a_parameter_dict():
    rng = np.random.default_rng(4)
    model = nn.Sequential(nn.Linear(3, 4, rng=rng), nn.Tanh(), nn.Linear(4, 2, rng=rng))
    x, y = np.random.default_rng(5).standard_normal((6, 3)), np.array([0, 1, 1, 0, 1, 0])
    params = {k: v.numpy() for k, v in model.named_parameters()}
    grads = nb.grad(lambda p: nn.functional.cross_entropy(nn.functional_call(model, p, x), y))(params)
    nn.functional.cross_entropy(model(x), y).backward()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-12)
    assert isinstance(model[0].weight, nn.Parameter)  # restored afterwards
    with pytest.raises(KeyError, match="'0.kernel' is not a parameter"):
        nn.functional_call(model, {"0.kernel": np.ones(3)}, x)


def test_dropout_train_and_eval():
    layer = nn.Dropout(0.5, rng=np.random.default_rng(0))
    x = np.ones((1000,))
    y = np.asarray(layer(x))
    assert set(np.unique(y)) == {0.0, 2.0} and 0.45 < (y == 0).mean() < 0.55
    layer.eval()
    np.testing.assert_array_equal(np.asarray(layer(x)), x)


def test_float32_models_stay_float32():
    rng = np.random.default_rng(6)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, dtype=np.float32, rng=rng), nn.ReLU(), nn.Flatten(),
                          nn.Linear(2 * 16, 3, dtype=np.float32, rng=rng))
    x = np.ones((2, 1, 6, 6), dtype=np.float32)
    loss = nn.functional.cross_entropy(model(x), np.array([0, 1]))
    assert loss.dtype == np.float32
    loss.backward()
    assert all(p.grad.dtype == np.float32 for p in model.parameters())


def test_no_global_random_state_rng_is_a_generator_or_a_seed():
    assert not hasattr(nn, "seed")
    rng = np.random.default_rng(0)
    first, second = nn.Linear(4, 3, rng=rng), nn.Linear(4, 3, rng=rng)  # one generator, drawn in turn
    again = np.random.default_rng(0)
    np.testing.assert_array_equal(first.weight.numpy(), nn.Linear(4, 3, rng=again).weight.numpy())
    np.testing.assert_array_equal(second.weight.numpy(), nn.Linear(4, 3, rng=again).weight.numpy())
    np.testing.assert_array_equal(nn.Conv2d(2, 3, 3, rng=5).weight.numpy(), nn.Conv2d(2, 3, 3, rng=5).weight.numpy())
    # without rng=: a fresh generator each time, as np.random.default_rng() gives
    assert not np.array_equal(nn.Linear(4, 3).weight.numpy(), nn.Linear(4, 3).weight.numpy())
    drop = nn.Dropout(0.5, rng=11)
    np.testing.assert_array_equal(np.asarray(drop(np.ones(50))), np.asarray(nn.Dropout(0.5, rng=11)(np.ones(50))))
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator, an int seed or None, got float"):
        nn.Linear(2, 2, rng=0.5)


def test_train_models_build_the_same_weights_for_the_same_seed():
    from nablab.train.models import build_model

    for name in ("mlp", "cnn1d", "resmlp"):
        a, b = build_model(name, (1, 40), 10, seed=3), build_model(name, (1, 40), 10, seed=3)
        for (na, pa), (nb_, pb) in zip(a.named_parameters(), b.named_parameters()):
            assert na == nb_
            np.testing.assert_array_equal(pa.numpy(), pb.numpy())
        assert not np.array_equal(build_model(name, (1, 40), 10, seed=4).parameters()[0].numpy(),
                                  a.parameters()[0].numpy())


@pytest.mark.parametrize("pool", [nn.MaxPool2d(2), nn.MaxPool2d(3, stride=2, dilation=2), nn.MaxPool2d(2, padding=1)])
def test_sequential_pools_before_relu_with_the_values_and_gradients_of_the_written_order(pool):
    """Sequential runs ReLU then max pooling (without padding) as pooling then ReLU: values and gradients equal to
    the layers called one by one in the written order, with ties at 0, windows all below 0, NaN, and the same
    numbers as torch.nn."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 2, 9, 9))
    x[0, 0, :4, :4] = -1.0  # windows whose largest value is below 0
    x[1, 1, :, :2] = 0.0  # ties at 0
    x[2, 0, 3, 3] = np.nan
    g = rng.standard_normal((3, 2 * pool(np.zeros((1, 1, 9, 9))).shape[-1] ** 2))
    model = nn.Sequential(nn.ReLU(), pool, nn.Flatten())
    reorders = nn.layers._commute(model[0], model[1])
    assert reorders == (pool.padding == 0)
    xs, xw = nb.tensor(x, requires_grad=True), nb.tensor(x, requires_grad=True)
    ours = model(xs)
    written = model[2](model[1](model[0](xw)))
    np.testing.assert_array_equal(ours.numpy(), written.numpy())
    ours.backward(g)
    written.backward(g)
    np.testing.assert_array_equal(xs.grad.numpy(), xw.grad.numpy())
    g_bad = g.copy()  # inf and NaN cotangents, also on windows whose largest value is below 0
    g_bad[:, ::3] = np.inf
    g_bad[:, 1::5] = np.nan
    np.testing.assert_array_equal(nb.vjp(model, x)[1](g_bad)[0],
                                  nb.vjp(lambda q: model[2](model[1](model[0](q))), x)[1](g_bad)[0])
    t_bad = np.where(rng.random(x.shape) < 0.3, np.nan, rng.standard_normal(x.shape))
    np.testing.assert_array_equal(nb.jvp(model, (x,), (t_bad,))[1],
                                  nb.jvp(lambda q: model[2](model[1](model[0](q))), (x,), (t_bad,))[1])
    xt = torch.tensor(x, requires_grad=True)
    torch_pool = torch.nn.MaxPool2d(pool.kernel_size, pool.stride, pool.padding, pool.dilation)
    ref = torch.nn.Sequential(torch.nn.ReLU(), torch_pool, torch.nn.Flatten())(xt)
    ref.backward(torch.tensor(g))
    np.testing.assert_array_equal(ours.numpy(), ref.detach().numpy())
    np.testing.assert_array_equal(xs.grad.numpy(), xt.grad.numpy())


def test_sequential_keeps_the_written_order_for_a_subclass_of_max_pooling():
    class Shifted(nn.MaxPool2d):
        def forward(self, x):
            return super().forward(x) - 1.0

    x = np.array([[[[-1.0, 0.5], [0.25, 0.0]]]])
    assert not nn.layers._commute(nn.ReLU(), Shifted(2))
    np.testing.assert_array_equal(nn.Sequential(nn.ReLU(), Shifted(2))(x), Shifted(2)(nn.ReLU()(x)))
