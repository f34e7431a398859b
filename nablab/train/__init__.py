"""Training: models, a loop with metrics and atomic checkpoints, and a PyTorch replica.

>>> from nablab.train import TrainConfig, MODELS
>>> sorted(MODELS)
['cnn1d', 'convnet', 'logistic', 'mlp', 'resmlp']
>>> TrainConfig(model="mlp", epochs=3).validate().optimizer
'adam'

``nablab train --dataset mnist1d --model cnn1d --epochs 5 --out runs/cnn`` runs it from the shell.
"""

from nablab.train.backends import BACKENDS, NablabBackend, TorchBackend, make_backend
from nablab.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nablab.train.datasets import DATASETS, Dataset, load_dataset
from nablab.train.loop import Reporter, TrainConfig, TrainingDiverged, TrainResult, train
from nablab.train.metrics import plot_run, read_csv
from nablab.train.models import MODELS, build_model
from nablab.train.optimizers import OPTIMIZERS

__all__ = [
    "MODELS", "build_model", "OPTIMIZERS", "DATASETS", "Dataset", "load_dataset", "BACKENDS",
    "NablabBackend", "TorchBackend", "make_backend", "TrainConfig", "TrainResult", "TrainingDiverged",
    "Reporter", "train", "save_checkpoint", "load_checkpoint", "CheckpointError", "plot_run", "read_csv",
]
