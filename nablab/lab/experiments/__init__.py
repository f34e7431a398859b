"""Experiment modules, one per family of claims (``autodiff.py``, ``arch.py``, ...).

Every module in this package is imported by :func:`nablab.lab.registry.registered`;
a module registers its experiments with the decorator::

    from nablab.lab.registry import Context, Result, experiment

    @experiment("data.one-hot", title="One-hot encoding of a sentence")
    def one_hot(ctx: Context) -> Result:
        ...
        return Result("agrees", computed={...}, summary="...", seed_says="...")

Compute every value shown; never copy a seed's number into an experiment.
"""
