"""One training step, evaluation and state, in nablab or in PyTorch behind one interface.

Both backends start from the same nablab model (PyTorch gets a copy of its
weights), take the same NumPy batches and expose their whole training state
(weights and optimizer state) as named NumPy arrays for checkpoints.

>>> import numpy as np
>>> from nablab.train.models import build_model
>>> from nablab.train.backends import NablabBackend, TorchBackend
>>> model = build_model("logistic", (1, 8), 3, seed=0)
>>> ours, theirs = NablabBackend(model, "sgd", 0.1), TorchBackend(model, "sgd", 0.1)
>>> x, y = np.random.default_rng(0).standard_normal((6, 1, 8)), np.array([0, 1, 2, 0, 1, 2])
>>> for _ in range(3):
...     loss, _ = ours.train_step(x, y)
...     torch_loss, _ = theirs.train_step(x, y)
...     print(f"{loss:.10f} {torch_loss:.10f}")
1.3597656318 1.3597656318
1.2782522357 1.2782522357
1.2060360215 1.2060360215
"""

from __future__ import annotations

import math

import numpy as np

from nablab import nn
from nablab.autodiff.core import no_grad
from nablab.nn import functional as F
from nablab.train.optimizers import make_optimizer, make_torch_optimizer
from nablab.torch_bridge import to_torch

__all__ = ["NablabBackend", "TorchBackend", "BACKENDS", "make_backend"]

BACKENDS = ("nablab", "torch")


def _labels(y):
    y = np.asarray(y)
    if y.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers, got dtype {y.dtype}")
    return y.astype(np.int64, copy=False)


class NablabBackend:
    """Imperative nablab: ``zero_grad(); loss = cross_entropy(model(x), y); loss.backward(); step()``.

    With ``zero_grad=False`` the gradients are never reset, the classic bug of a
    loop that forgets ``zero_grad()``: each ``backward`` adds the new gradient to
    ``.grad``, so every step then uses the sum of all gradients so far.

    ``model`` is a :mod:`nablab.nn` model, ``optimizer`` a key of ``OPTIMIZERS``, ``lr`` its
    learning rate and ``weight_decay`` its decay (None: the optimizer's default).

    >>> import numpy as np
    >>> from nablab.train import NablabBackend, build_model
    >>> backend = NablabBackend(build_model("logistic", (1, 4), 2, seed=0), "sgd", 0.5)
    >>> x, y = np.array([[[1.0, 0.0, 0.0, 0.0]], [[0.0, 1.0, 0.0, 0.0]]]), np.array([0, 1])
    >>> losses = [backend.train_step(x, y)[0] for _ in range(3)]
    >>> bool(losses[2] < losses[0]), sorted(backend.state_arrays())[:2]
    (True, ['model.1.bias', 'model.1.weight'])
    """

    name = "nablab"

    def __init__(self, model: nn.Module, optimizer: str, lr: float, zero_grad: bool = True, weight_decay=None):
        self.model = model
        self.optimizer = make_optimizer(optimizer, model.parameters(), lr, weight_decay)
        self.zero_grad = zero_grad

    def train_step(self, x, y):
        """One step on a batch; returns ``(loss, correct)``. A non-finite loss leaves the weights untouched."""
        y = _labels(y)
        if self.zero_grad:
            self.optimizer.zero_grad()
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        value = float(loss.item())
        correct = int(np.count_nonzero(np.argmax(logits.data, axis=1) == y))
        if math.isfinite(value):
            loss.backward()
            self.optimizer.step()
        return value, correct

    def evaluate(self, x, y, batch_size=1000):
        """Mean cross-entropy and accuracy on ``(x, y)``, without recording a graph."""
        y = _labels(y)
        total, correct = 0.0, 0
        with no_grad():
            for start in range(0, len(x), batch_size):
                logits = self.model(x[start:start + batch_size])
                yb = y[start:start + batch_size]
                total += float(F.cross_entropy(logits, yb, reduction="sum").item())
                correct += int(np.count_nonzero(np.argmax(logits.data, axis=1) == yb))
        return total / len(x), correct / len(x)

    def parameters(self):
        """Name -> a copy of each weight."""
        return {k: np.array(p.numpy(), copy=True) for k, p in self.model.named_parameters()}

    def state_arrays(self):
        out = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        out.update({f"optim.{k}": np.asarray(v) for k, v in self.optimizer.state_dict().items()})
        return out

    def load_state_arrays(self, arrays):
        self.model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model.")})
        self.optimizer.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("optim.")})


class TorchBackend:
    """The same step in PyTorch, on a replica initialised with the nablab model's weights.

    The arguments are :class:`NablabBackend`'s (PyTorch must be installed).

    >>> import numpy as np
    >>> from nablab.train import NablabBackend, TorchBackend, build_model
    >>> model = build_model("logistic", (1, 4), 2, seed=0)
    >>> x, y = np.eye(4)[None, :2].transpose(1, 0, 2), np.array([0, 1])
    >>> theirs, ours = TorchBackend(model, "sgd", 0.5), NablabBackend(model, "sgd", 0.5)
    >>> bool(np.isclose(theirs.train_step(x, y)[0], ours.train_step(x, y)[0]))
    True
    """

    name = "torch"

    def __init__(self, model: nn.Sequential, optimizer: str, lr: float, zero_grad: bool = True, weight_decay=None):
        self.model = to_torch(model)
        self.optimizer = make_torch_optimizer(optimizer, self.model.parameters(), lr, weight_decay)
        self.zero_grad = zero_grad

    def _tensors(self, x, y):
        import torch

        return torch.as_tensor(np.ascontiguousarray(x)), torch.as_tensor(_labels(y))

    def train_step(self, x, y):
        import torch

        xt, yt = self._tensors(x, y)
        if self.zero_grad:
            self.optimizer.zero_grad()
        logits = self.model(xt)
        loss = torch.nn.functional.cross_entropy(logits, yt)
        value = float(loss.item())
        correct = int((logits.detach().argmax(dim=1) == yt).sum().item())
        if math.isfinite(value):
            loss.backward()
            self.optimizer.step()
        return value, correct

    def evaluate(self, x, y, batch_size=1000):
        import torch

        total, correct = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                xt, yt = self._tensors(x[start:start + batch_size], y[start:start + batch_size])
                logits = self.model(xt)
                total += float(torch.nn.functional.cross_entropy(logits, yt, reduction="sum").item())
                correct += int((logits.argmax(dim=1) == yt).sum().item())
        return total / len(x), correct / len(x)

    def parameters(self):
        return {k: p.detach().numpy().copy() for k, p in self.model.named_parameters()}

    def state_arrays(self):
        out = {f"model.{k}": v.detach().numpy().copy() for k, v in self.model.state_dict().items()}
        for i, p in enumerate(self.optimizer.param_groups[0]["params"]):
            for key, value in self.optimizer.state.get(p, {}).items():
                if value is None:
                    continue
                arr = value.detach().numpy().copy() if hasattr(value, "detach") else np.asarray(value)
                out[f"optim.{i}.{key}"] = arr
        return out

    def load_state_arrays(self, arrays):
        import torch

        model_state = {k[6:]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("model.")}
        self.model.load_state_dict(model_state)
        params = self.optimizer.param_groups[0]["params"]
        for name, value in arrays.items():
            if not name.startswith("optim."):
                continue
            _, index, key = name.split(".", 2)
            if int(index) >= len(params):
                raise KeyError(f"checkpoint entry {name} names parameter {index}, but the optimizer has {len(params)}")
            self.optimizer.state[params[int(index)]][key] = torch.from_numpy(np.array(value))


def make_backend(name: str, model: nn.Sequential, optimizer: str, lr: float, zero_grad: bool = True,
                 weight_decay=None):
    """The backend ``name`` ("nablab" or "torch") training ``model`` (torch copies its weights).

    The other arguments are :class:`NablabBackend`'s.

    >>> from nablab.train import make_backend, build_model
    >>> type(make_backend("nablab", build_model("logistic", (1, 4), 2), "adam", 0.01)).__name__
    'NablabBackend'
    """
    if name == "nablab":
        return NablabBackend(model, optimizer, lr, zero_grad, weight_decay)
    if name == "torch":
        return TorchBackend(model, optimizer, lr, zero_grad, weight_decay)
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
