"""One bridge to PyTorch for nablab models (weight for weight) and arch specs; the old import paths lead to it."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nablab import nn  # noqa: E402
from nablab.torch_bridge import copy_weights, to_torch  # noqa: E402


def test_the_old_import_paths_are_the_bridge():
    import nablab.arch.to_torch as arch_bridge
    import nablab.torch_bridge as bridge
    import nablab.train.torch_replica as train_bridge

    assert arch_bridge.to_torch is train_bridge.to_torch is bridge.to_torch
    assert train_bridge.copy_weights is copy_weights and train_bridge.SUPPORTED_LAYERS == bridge.SUPPORTED_LAYERS


def test_a_model_is_copied_and_a_spec_is_built():
    model = nn.Sequential(nn.Conv1d(1, 4, 5, stride=2, padding=1, rng=0), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 19, 3, rng=1))
    replica = to_torch(model)
    x = np.random.default_rng(2).standard_normal((2, 1, 40))
    np.testing.assert_allclose(model(x).numpy(), replica(torch.from_numpy(x)).detach().numpy(), atol=1e-12)
    assert next(to_torch(model, dtype=np.float32).parameters()).dtype == torch.float32
    net = to_torch("input 1x8x8, a: conv3-2, conv3-2, add(a)")
    outs = net(torch.zeros(1, 1, 8, 8), return_all=True)
    assert [tuple(o.shape) for o in outs] == [(1, 2, 8, 8)] * 3  # conv3 pads to keep the size
    assert torch.equal(outs[2], outs[0] + outs[1])


def test_arguments_that_do_not_apply_are_refused():
    model = nn.Sequential(nn.Linear(2, 2, rng=0))
    with pytest.raises(TypeError, match="input_shape is for specs"):
        to_torch(model, (2,))
    with pytest.raises(TypeError, match="dtype is for nablab models"):
        to_torch("input 4, fc-2", dtype=np.float32)
    with pytest.raises(TypeError, match="no PyTorch counterpart for layer Tanh"):
        to_torch(nn.Sequential(nn.Linear(2, 2, rng=0), nn.Tanh()))
    with pytest.raises(KeyError, match="parameter names differ"):
        copy_weights(model, torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)))
