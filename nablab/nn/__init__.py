"""Neural-network layers, losses and initialisers on the nablab engine (PyTorch's names and layouts).

>>> import numpy as np, nablab as nb
>>> from nablab import nn
>>> rng = np.random.default_rng(0)          # layers take rng=: there is no global random state
>>> model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
...                       nn.Linear(4 * 4 * 4, 3, rng=rng))
>>> x = np.random.default_rng(1).standard_normal((2, 1, 8, 8))
>>> loss = nn.functional.cross_entropy(model(x), np.array([0, 2]))
>>> loss.backward()
>>> model[0].weight.grad.shape
(4, 1, 3, 3)
"""

from nablab.nn import functional, init
from nablab.nn.layers import (
    AvgPool2d, BatchNorm1d, BatchNorm2d, Conv1d, Conv2d, ConvTranspose2d, CrossEntropyLoss, Dropout, Flatten,
    HuberLoss, LeakyReLU, Linear, MaxPool1d, MaxPool2d, MSELoss, MultiMarginLoss, ReLU, Sequential, Sigmoid, Tanh,
)
from nablab.nn.module import Module, Parameter, functional_call, substituted

__all__ = [
    "Module", "Parameter", "functional_call", "substituted", "functional", "init",
    "Linear", "Conv1d", "Conv2d", "ConvTranspose2d", "MaxPool1d", "MaxPool2d", "AvgPool2d",
    "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "Flatten", "Dropout", "BatchNorm1d", "BatchNorm2d", "Sequential",
    "CrossEntropyLoss", "MSELoss", "HuberLoss", "MultiMarginLoss",
]
