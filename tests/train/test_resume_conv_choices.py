"""A resumed run computes its convolutions with the algorithms its first part measured.

Convolution algorithms differ in the last bits of float32 results, and which one wins a
measurement can change from process to process; the checkpoint keeps the choices and
the resumed run takes them back instead of measuring afresh.
"""

import json

import pytest

from nablab.nn import conv_algorithms as ca
from nablab.train import CheckpointError, TrainConfig, load_checkpoint, train
from nablab.train.checkpoint import META_KEY
from nablab.train.loop import CHECKPOINT

#: A choice as a measurement would have left it (for a shape the toy run itself does not measure).
ROW = {"op": "forward", "geometry": [128, 32, 16, 16, 64, 32, 3, 3, 16, 16, [1, 1], [1, 1], [1, 1], 1],
       "dtype": "<f4", "algorithm": "winograd4"}


def config(**kw):
    return TrainConfig(**{**dict(model="mlp", hidden=8, optimizer="adam", lr=1e-2, epochs=2, batch_size=64, seed=1,
                                 dtype="float64"), **kw})


@pytest.fixture
def clean_choices():
    ca.clear_choices()
    yield
    ca.clear_choices()


def test_the_checkpoint_keeps_the_choices_and_the_resumed_run_takes_them_back(tmp_path, toy, clean_choices):
    ca.import_choices([ROW])
    folder = tmp_path / "run"
    train(config(epochs=1), folder, dataset=toy)
    _, meta = load_checkpoint(folder / CHECKPOINT)
    assert meta["conv_algorithms"] == [ROW]
    ca.clear_choices()                    # a new process: nothing measured yet
    train(config(), folder, dataset=toy, resume=True)
    assert ca.export_choices() == [ROW]   # taken back, not measured again


def test_a_damaged_choice_is_refused_by_name(tmp_path, toy, clean_choices):
    import io

    import numpy as np

    folder = tmp_path / "run"
    train(config(epochs=1), folder, dataset=toy)
    arrays, meta = load_checkpoint(folder / CHECKPOINT)
    meta["conv_algorithms"] = [{**ROW, "algorithm": "magic"}]
    buf = io.BytesIO()
    np.savez(buf, **arrays, **{META_KEY: np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)})
    (folder / CHECKPOINT).write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match=r"convolution choice 0: unknown algorithm 'magic'"):
        train(config(), folder, dataset=toy, resume=True)
    assert ca.export_choices() == []      # nothing half-taken


def test_import_choices_checks_every_row_first(clean_choices):
    with pytest.raises(ValueError, match="convolution choice 1: unknown map 'sideways'"):
        ca.import_choices([ROW, {**ROW, "op": "sideways"}])
    assert ca.export_choices() == []
    with pytest.raises(ValueError, match="convolution choice 0: dtype 'float99' is not a NumPy dtype"):
        ca.import_choices([{**ROW, "dtype": "float99"}])


@pytest.mark.parametrize("change, words", [
    ({"geometry": [8, 3, 12, 12, 4, 3, 5, 5, 8, 8, [1, 1], [0, 0], [1, 1], 1]}, "winograd4 cannot compute forward "
     "for kernel 5x5"),
    ({"geometry": [8, 3, 12, 12, 4, 3, 3, 3, 5, 5, [2, 2], [0, 0], [1, 1], 1]}, r"winograd4 cannot .* stride \(2, 2\)"),
    ({"dtype": "<i8"}, "winograd4 cannot .* dtype int64"),
    ({"op": "weight_grad from kept columns"}, "winograd4 cannot compute weight_grad from kept columns"),
])
def test_a_choice_that_does_not_apply_to_its_shape_is_refused(clean_choices, change, words):
    """Winograd ignores a stride and needs a 3x3 kernel: taking such a row would compute something else."""
    with pytest.raises(ValueError, match="convolution choice 0: " + words):
        ca.import_choices([{**ROW, **change}])
    assert ca.export_choices() == []
