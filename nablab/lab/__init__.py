"""The lab: one experiment per seed claim, a registry, and the report.

>>> from nablab.lab import CLAIMS, registered
>>> len(CLAIMS)
34
"""

from nablab.lab.claims import CLAIMS, CLAIMS_BY_ID, Claim, UnknownClaimError, get_claim
from nablab.lab.registry import (
    STATUSES,
    Context,
    Result,
    experiment,
    load_errors,
    registered,
    run,
)

__all__ = ["CLAIMS", "CLAIMS_BY_ID", "Claim", "UnknownClaimError", "get_claim", "STATUSES",
           "Context", "Result", "experiment", "load_errors", "registered", "run"]
