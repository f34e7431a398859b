"""The PyTorch replica starts from nablab's weights and follows it step by step (float64)."""

import numpy as np
import pytest
import torch

from nablab.data import DataLoader
from nablab.train.backends import NablabBackend, TorchBackend
from nablab.train.models import build_model
from nablab.train.torch_replica import to_torch

from .conftest import make_toy

CASES = [
    ("logistic", (1, 40), "adam", 1e-2, None),
    ("mlp", (1, 40), "momentum", 5e-2, None),
    ("resmlp", (1, 40), "nesterov", 2e-2, None),
    ("resmlp", (1, 40), "adam", 1e-2, 1e-3),
    ("convnet", (1, 40), "adam", 1e-3, None),
    ("cnn1d", (1, 40), "adam", 1e-2, None),
    ("cnn1d", (1, 40), "adamw", 1e-2, None),
    ("convnet", (3, 8, 8), "rmsprop", 1e-3, None),
]


@pytest.mark.parametrize("name, shape, optimizer, lr, weight_decay", CASES, ids=lambda c: str(c))
def test_losses_agree_step_by_step_for_100_steps(name, shape, optimizer, lr, weight_decay):
    data = make_toy(n_train=320, n_test=10, shape=shape, classes=5)
    model = build_model(name, shape, 5, seed=3, dtype=np.float64)
    ours = NablabBackend(model, optimizer, lr, weight_decay=weight_decay)
    theirs = TorchBackend(model, optimizer, lr, weight_decay=weight_decay)
    loader = DataLoader(data.x_train, data.y_train, batch_size=32, seed=1)
    a, b = [], []
    while len(a) < 100:
        for xb, yb in loader:
            a.append(ours.train_step(xb, yb)[0])
            b.append(theirs.train_step(xb, yb)[0])
    a, b = np.array(a[:100]), np.array(b[:100])
    assert a[-1] < a[0]  # it learns something
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-8)
    for k, v in ours.parameters().items():
        np.testing.assert_allclose(v, theirs.parameters()[k], rtol=0, atol=1e-8, err_msg=k)


@pytest.mark.parametrize("name, shape", [("logistic", (1, 40)), ("mlp", (1, 40)), ("resmlp", (1, 40)), ("convnet", (1, 40)),
                                         ("cnn1d", (1, 40)), ("convnet", (3, 32, 32))])
def test_replica_has_the_same_layers_and_weights(name, shape):
    model = build_model(name, shape, 10, seed=0)
    replica = to_torch(model)
    assert [n for n, _ in replica.named_parameters()] == [n for n, _ in model.named_parameters()]
    assert sum(p.numel() for p in replica.parameters()) == model.num_parameters()
    x = np.random.default_rng(0).standard_normal((3,) + shape)
    np.testing.assert_allclose(model(x).numpy(), replica(torch.from_numpy(x)).detach().numpy(), atol=1e-12)


def test_float32_replica_stays_float32():
    model = build_model("cnn1d", (1, 40), 10, dtype=np.float32)
    assert next(to_torch(model).parameters()).dtype == torch.float32


def test_unknown_layer_is_named():
    from nablab import nn

    with pytest.raises(TypeError, match="Tanh"):
        to_torch(nn.Sequential(nn.Linear(2, 2), nn.Tanh()))


def test_published_architectures():
    # CS231n ThreeLayerConvNet on CIFAR-10: 32 filters 7x7x3, affine 32*16*16 -> 100 -> 10
    convnet = build_model("convnet", (3, 32, 32), 10)
    assert convnet.num_parameters() == (32 * 3 * 49 + 32) + (32 * 16 * 16 * 100 + 100) + (100 * 10 + 10)
    # MNIST-1D ConvBase: lengths 40 -> 19 -> 10 -> 5, 25 channels, linear 125 -> 10
    cnn = build_model("cnn1d", (1, 40), 10)
    assert cnn.num_parameters() == (25 * 5 + 25) + 2 * (25 * 25 * 3 + 25) + (125 * 10 + 10)
    assert build_model("mlp", (1, 40), 10).num_parameters() == 40 * 100 + 100 + 100 * 10 + 10
    # MNIST-1D MLPBase: 40 -> 100, a residual 100 -> 100, 100 -> 10
    assert build_model("resmlp", (1, 40), 10).num_parameters() == 40 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10
    with pytest.raises(ValueError, match=r"cnn1d .* \(3, 32, 32\)"):
        build_model("cnn1d", (3, 32, 32), 10)
    with pytest.raises(ValueError, match="'resnet'"):
        build_model("resnet", (1, 40), 10)
