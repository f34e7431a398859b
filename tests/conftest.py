"""Suite-wide settings."""

import matplotlib

matplotlib.use("Agg")

try:
    import torch
except ImportError:  # torch is a test extra; tests that need it import it themselves
    torch = None

if torch is not None:
    # The tensors in the tests are tiny: torch's thread pool only adds contention, which
    # under pytest-xdist (one process per core) slowed tiny-tensor loops by 100x.
    torch.set_num_threads(1)
