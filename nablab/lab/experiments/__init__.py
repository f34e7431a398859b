"""Experiment modules, one per family of claims (``autodiff.py``, ``arch.py``, ...).

Every module in this package is imported by :func:`nablab.lab.registry.registered`;
a module registers each claim's computation and figure::

    from nablab.lab.registry import Context, compute, figure

    @compute("data.one-hot")
    def one_hot(run: Context) -> OneHot:          # a dataclass with a field per answer slot
        ...

    @figure("data.one-hot")
    def one_hot_figure(result: OneHot, run: Context) -> None:
        ...

The claim itself (statement, parameters, slots) is data, in ``nablab/lab/data/claims.toml``.
Compute every value shown; never copy an answer set's number into an experiment.
"""
