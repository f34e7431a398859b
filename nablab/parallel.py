"""Threads for NumPy work that releases the GIL: a convolution's chunks of images, a large max pooling's parts,
the passes of ReLU and of Adam's update over large arrays.

NumPy releases the GIL inside its copies, comparisons, element-wise loops and BLAS products, so Python threads
that each take a part of an array run at once. The parts never change a result: work split by :func:`in_parts`
is element-wise (the same bits however it is cut), and a convolution's chunks do not depend on the count.

>>> import numpy as np
>>> from nablab import parallel
>>> x = np.arange(-4.0, 4.0)
>>> parallel.elementwise(np.maximum, x, 0.0, min_size=1)
array([0., 0., 0., 0., 0., 1., 2., 3.])
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["elementwise", "in_parts", "map_items", "serial", "threads"]

#: Arrays with fewer entries than this run element-wise passes in one piece: below it, waking a thread costs
#: about what the second core saves.
MIN_PARALLEL_SIZE = 1 << 19


def _default_threads():
    for var in ("NABLAB_CONV_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) >= 1:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_threads = _default_threads()
_pool = None
_pool_key = None
_pool_lock = threading.Lock()


def _after_fork_in_child():
    """A forked child has none of the parent's pool threads, and the lock may have been held at the fork."""
    global _pool, _pool_key, _pool_lock
    _pool, _pool_key, _pool_lock = None, None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Serial(threading.local):
    active = False  # in a serial() block, or on one of the pool's threads (a nested split would wait on itself)


_serial = _Serial()


class _Share:
    """The items of one :func:`map_items` call, taken in order by whichever thread is free: the caller's own and
    the pool's. Each item runs in its own copy of the caller's context (NumPy's ``errstate`` lives there, so an
    error raised, warned or ignored is the same on every thread count), splitting nothing further. After an item
    raises, no further item starts."""

    def __init__(self, fn, items):
        self.fn, self.items = fn, items
        self.contexts = [contextvars.copy_context() for _ in items]  # one each: a context runs on one thread at once
        self.results = [None] * len(items)
        self.errors = {}
        self.next = iter(range(len(items))).__next__  # (one next() at a time: the GIL is held while it runs)
        self.stopped = False

    def drain(self):
        previous, _serial.active = _serial.active, True
        try:
            while not self.stopped:
                try:
                    i = self.next()
                except StopIteration:
                    return
                try:
                    self.results[i] = self.contexts[i].run(self.fn, self.items[i])
                except BaseException as err:  # (KeyboardInterrupt too: the other threads stop taking items)
                    self.errors[i] = err
                    self.stopped = True
        finally:
            _serial.active = previous


def threads(n=None):
    """Threads that work at once (a convolution's chunks of images; the parts of a large max pooling, ReLU or Adam
    update); returns the previous count and sets it when ``n`` is given. The default is ``NABLAB_CONV_THREADS``
    (named when convolutions were its only use), else the BLAS thread count from the environment
    (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``), else the CPUs this process may use.
    Results are the same, bit for bit, for every count.

    >>> from nablab import parallel
    >>> previous = parallel.threads(1)
    >>> parallel.threads(previous)
    1
    """
    global _threads
    previous = _threads
    if n is not None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"threads: expected a positive int, got {n!r}")
        _threads = n
    return previous


@contextlib.contextmanager
def serial():
    """Within the block (this thread), work that would be split over threads runs in turn (so that BLAS may use
    the cores instead).

    >>> from nablab import parallel
    >>> with parallel.serial():
    ...     parallel.map_items(lambda i: i * i, [1, 2, 3])
    [1, 4, 9]
    """
    previous, _serial.active = _serial.active, True
    try:
        yield
    finally:
        _serial.active = previous


_blas = None


def _blas_controller():
    """threadpoolctl's controller of the loaded BLAS, if threadpoolctl is installed (it is optional), else False."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _blas = False
        else:
            _blas = ThreadpoolController()
    return _blas


def map_items(fn, items, blas=True):
    """``[fn(item) for item in items]``, on up to :func:`threads` threads (a pool made again in a forked child).

    A convolution's chunks make small GEMMs: a BLAS that split each of them over its own threads as well would
    wake and wait for them at every call, and with both, twice as many threads as cores compete (on a loaded
    machine that made a convolution ten times slower). So while the items run in parallel, BLAS runs one thread
    per call (``blas=True``), when threadpoolctl is installed to say so. Each item runs in a copy of the caller's
    context (its NumPy ``errstate``); a split asked for inside an item runs in turn. Items run on the caller's
    thread and on the pool's, so ``fn`` must not depend on thread-local state (``threading.local``): the
    caller's is seen by some items and not by others. The first error by position is raised, after the other
    threads finish the item they are on; no item starts after an error.

    >>> from nablab import parallel
    >>> parallel.map_items(len, ["a", "bc"])
    [1, 2]
    """
    global _pool, _pool_key
    if _threads <= 1 or len(items) <= 1 or _serial.active:
        return [fn(item) for item in items]
    key = (os.getpid(), _threads)
    with _pool_lock:  # two user threads arriving at once make one pool between them
        if _pool_key != key:
            _pool = ThreadPoolExecutor(_threads - 1, thread_name_prefix="nablab")
            _pool_key = key
        pool = _pool
    controller = _blas_controller() if blas else None
    share = _Share(fn, items)
    with controller.limit(limits=1, user_api="blas") if controller else contextlib.nullcontext():
        # the caller's thread works too: it starts at once, while a pool thread wakes (submitting every item to
        # the pool and waiting had cost about 0.2 ms a call, the time the woken threads waited for the GIL)
        helpers = [pool.submit(share.drain) for _ in range(min(_threads, len(items)) - 1)]
        try:
            share.drain()
        except BaseException:  # (an interrupt between items: the pool's threads stop taking them)
            share.stopped = True
            raise
        finally:
            for helper in helpers:
                helper.result()
    if share.errors:  # an interrupt (KeyboardInterrupt, SystemExit) first, else the first error by position
        interrupts = [i for i, err in share.errors.items() if not isinstance(err, Exception)]
        raise share.errors[min(interrupts or share.errors)]
    return share.results


def in_parts(n, fn, min_part=1):
    """``[fn(start, stop), ...]`` over consecutive parts of ``range(n)``, at most one per thread (:func:`threads`)
    and each of at least ``min_part`` items, run at once: for NumPy passes outside BLAS that release the GIL
    (comparisons, copies, gathers). The parts depend on the thread count, so ``fn`` must give the same bits
    however ``range(n)`` is cut (element-wise work does).

    >>> from nablab import parallel
    >>> parallel.in_parts(10, lambda a, b: (a, b), min_part=4)[0][0]
    0
    """
    parts = max(1, min(_threads, n // max(int(min_part), 1)))
    bounds = [(n * i // parts, n * (i + 1) // parts) for i in range(parts)]
    return map_items(lambda b: fn(*b), bounds, blas=False)


def elementwise(ufunc, *args, min_size=MIN_PARALLEL_SIZE):
    """``ufunc(*args)`` for C-contiguous NumPy arrays of one shape (and Python numbers), in parts on the threads
    when the arrays have at least ``min_size`` entries; anything else (a subclass such as a masked array too) is
    passed to ``ufunc`` as it is. ``ufunc`` is a NumPy ufunc or any element-wise function that takes ``out=``.

    >>> import numpy as np
    >>> from nablab import parallel
    >>> parallel.elementwise(np.multiply, np.ones(3), 2.0)
    array([2., 2., 2.])
    """
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    shape = arrays[0].shape if arrays else None
    if (_threads <= 1 or not arrays or arrays[0].size < min_size
            or not all(a.shape == shape and a.flags.c_contiguous for a in arrays)
            or not all(type(a) in (np.ndarray, float, int) for a in args)):  # (subclasses: the ufunc's own result)
        return ufunc(*args)
    out = np.empty(shape, dtype=ufunc(*[a.reshape(-1)[:1] if isinstance(a, np.ndarray) else a for a in args]).dtype)
    flat = [a.reshape(-1) if isinstance(a, np.ndarray) else a for a in args]
    target = out.reshape(-1)

    def part(a, b):
        ufunc(*[f[a:b] if isinstance(f, np.ndarray) else f for f in flat], out=target[a:b])

    in_parts(target.size, part, min_size // 2)
    return out
