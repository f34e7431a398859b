"""``numpy.random`` itself: random numbers are inputs, not something to differentiate.

>>> import nablab.numpy.random as npr
>>> npr.seed(0); npr.randn(2).shape
(2,)
"""

from numpy.random import *  # noqa: F401,F403
import numpy.random as _random


def __getattr__(name):
    return getattr(_random, name)
