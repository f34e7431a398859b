"""Module-level sweep tasks for the tests (workers import them by name)."""

import os
import time
import uuid
from pathlib import Path

import numpy as np


def logged_task(x: float, log: str, sleep: float = 0.0) -> dict:
    """``y = x^2`` and ``v = [x, x + 1]``; every call leaves a file in ``log`` (to count calls).

    Raises if ``log/fail-<x>`` exists: a test's way to make one task fail once.
    """
    Path(log, f"call-{x:g}-{uuid.uuid4().hex}").touch()
    if Path(log, f"fail-{x:g}").exists():
        raise RuntimeError(f"task {x:g} was told to fail")
    time.sleep(sleep)
    return {"y": np.float64(x) ** 2, "v": np.array([x, x + 1.0])}


def calls(log: str) -> list[float]:
    return sorted(float(p.name.split("-")[1]) for p in Path(log).glob("call-*"))


def getenv_task(name: str) -> dict:
    return {"value": np.array(os.environ.get(name, ""))}


def object_task() -> dict:
    return {"bad": np.array([{"a": 1}], dtype=object)}


def die_after(seconds: float) -> dict:
    """A worker that dies (not the task raising): the pool breaks."""
    time.sleep(seconds)
    os._exit(3)
