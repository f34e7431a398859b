"""The lab: the claims as data, one experiment per claim, answer sheets, grading and the report.

>>> from nablab.lab import CLAIMS, registered
>>> len(CLAIMS)
34
"""

from nablab.lab.claims import CLAIMS, CLAIMS_BY_ID, Claim, UnknownClaimError, get_claim
from nablab.lab.registry import STATUSES, Context, compute, figure, load_errors, registered

__all__ = ["CLAIMS", "CLAIMS_BY_ID", "Claim", "UnknownClaimError", "get_claim", "STATUSES",
           "Context", "compute", "figure", "load_errors", "registered"]
