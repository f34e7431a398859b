"""CIFAR-10 from a small fake in the official format: archive, folders, checksums, errors, malicious pickles."""

import hashlib
import os
import pickle

import numpy as np
import pytest

from nablab.data import DataNotFoundError, find_cifar10, load_cifar10
from nablab.data import cifar10


def assert_same(data, expected):
    assert set(data) == {"x_train", "y_train", "x_test", "y_test", "classes"}
    for key in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(data[key], expected[key])
    assert data["x_train"].dtype == np.uint8 and data["x_train"].shape[1:] == (3, 32, 32)
    assert data["y_train"].dtype == np.int64 and data["y_test"].dtype == np.int64
    assert data["classes"] == expected["classes"]


@pytest.fixture
def archive(tmp_path, fake_cifar, monkeypatch):
    """A fake archive under another name, and the checksum table set to the fake's files."""
    files, expected = fake_cifar.files()
    path = fake_cifar.archive(tmp_path / "fake-cifar.tar.gz", files)
    monkeypatch.setattr(cifar10, "KNOWN_MD5", fake_cifar.md5(files, path))
    return path, files, expected


def test_reads_the_archive_in_place(archive, tmp_path):
    path, _, expected = archive
    before = sorted(p.name for p in tmp_path.iterdir())
    assert_same(load_cifar10(path), expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing extracted


def test_pixel_layout_is_channel_first(archive):
    path, files, _ = archive
    data = load_cifar10(path)
    raw = pickle.loads(files["data_batch_1"], encoding="bytes")[b"data"]  # our own trusted fake
    # row layout: 1024 red values (row-major 32x32), then green, then blue
    assert data["x_train"][0, 1, 2, 5] == raw[0, 1024 + 2 * 32 + 5]


def test_reads_the_extracted_folder_and_a_parent_folder(tmp_path, fake_cifar, monkeypatch):
    files, expected = fake_cifar.files()
    folder = fake_cifar.folder(tmp_path, files)
    monkeypatch.setattr(cifar10, "KNOWN_MD5", fake_cifar.md5(files))
    assert_same(load_cifar10(folder), expected)
    assert_same(load_cifar10(tmp_path), expected)
    assert find_cifar10(tmp_path) == folder


def test_finds_the_archive_in_a_folder_and_through_nablab_data(tmp_path, fake_cifar, monkeypatch):
    files, expected = fake_cifar.files()
    path = fake_cifar.archive(tmp_path / "cifar-10-python.tar.gz", files)
    monkeypatch.setattr(cifar10, "KNOWN_MD5", fake_cifar.md5(files, path))
    assert find_cifar10(tmp_path) == path
    monkeypatch.setenv("NABLAB_DATA", str(tmp_path))
    assert_same(load_cifar10(), expected)


def test_the_official_archive_name_is_checked_against_the_published_md5(tmp_path, fake_cifar, monkeypatch):
    files, _ = fake_cifar.files()
    path = fake_cifar.archive(tmp_path / "cifar-10-python.tar.gz", files)
    table = dict(cifar10.KNOWN_MD5)
    assert table["cifar-10-python.tar.gz"] == "c58f30108f718f92721af3b95e74349a"
    table.update({name: hashlib.md5(blob).hexdigest() for name, blob in files.items()})
    monkeypatch.setattr(cifar10, "KNOWN_MD5", table)  # only the archive keeps its real checksum
    with pytest.raises(DataNotFoundError) as err:
        load_cifar10(path)
    message = str(err.value)
    assert str(path) in message and "c58f30108f718f92721af3b95e74349a" in message
    assert hashlib.md5(path.read_bytes()).hexdigest() in message
    assert "corrupt" in message and "Download it again" in message


def test_batch_files_are_checked_against_their_official_md5(tmp_path, fake_cifar):
    files, _ = fake_cifar.files()
    folder = fake_cifar.folder(tmp_path, files)
    with pytest.raises(DataNotFoundError, match="data_batch_1 has MD5 c99cafc152244af753f735de768cd75f"):
        load_cifar10(folder)


def test_a_truncated_archive_says_it_is_corrupt(archive, monkeypatch):
    path, files, _ = archive
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    monkeypatch.setattr(cifar10, "KNOWN_MD5", {n: h for n, h in cifar10.KNOWN_MD5.items() if n != path.name})
    with pytest.raises(DataNotFoundError, match=r"fake-cifar\.tar\.gz is corrupt or truncated") as err:
        load_cifar10(path)
    assert "cifar-10-python.tar.gz" in str(err.value) and "NABLAB_DATA" in str(err.value)


def test_a_file_that_is_not_an_archive(tmp_path):
    path = tmp_path / "notes.tar.gz"
    path.write_text("hello")
    with pytest.raises(DataNotFoundError, match="cannot be read as a .tar.gz archive"):
        load_cifar10(path)


def test_an_archive_without_the_batches(tmp_path, fake_cifar, monkeypatch):
    files, _ = fake_cifar.files()
    del files["test_batch"]
    path = fake_cifar.archive(tmp_path / "partial.tar.gz", files)
    monkeypatch.setattr(cifar10, "KNOWN_MD5", {})
    with pytest.raises(DataNotFoundError, match="lacks test_batch"):
        load_cifar10(path)


def test_missing_data_messages_say_where_to_put_the_files(tmp_path, monkeypatch):
    monkeypatch.delenv("NABLAB_DATA", raising=False)
    with pytest.raises(DataNotFoundError, match="no path was given and NABLAB_DATA is not set") as err:
        load_cifar10()
    for hint in ("cifar-10-python.tar.gz", "University of Toronto", "--data PATH", "NABLAB_DATA"):
        assert hint in str(err.value)
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=f"{missing} does not exist"):
        load_cifar10(missing)
    with pytest.raises(DataNotFoundError, match="expected cifar-10-python.tar.gz, a cifar-10-batches-py folder"):
        load_cifar10(tmp_path)


def test_an_incomplete_folder_lists_what_is_missing(tmp_path, fake_cifar):
    files, _ = fake_cifar.files()
    del files["data_batch_4"], files["batches.meta"]
    folder = fake_cifar.folder(tmp_path, files)
    with pytest.raises(DataNotFoundError, match="incomplete: data_batch_4, batches.meta missing"):
        load_cifar10(folder)


@pytest.mark.parametrize("batch, match", [
    ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]},
     r"shape \(N, 3072\), got a uint8 array of shape \(2, 100\)"),
    ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "got a float32 array"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}, "label 12 is outside 0..9"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "1 labels for 2 images"),
    ({b"labels": [0]}, "expected a dict with b'data' and b'labels'"),
    ([1, 2, 3], "got list"),
])
def test_malformed_batches_are_reported(tmp_path, fake_cifar, monkeypatch, batch, match):
    files, _ = fake_cifar.files(replace={"data_batch_2": fake_cifar.dumps(batch)})
    path = fake_cifar.archive(tmp_path / "odd.tar.gz", files)
    monkeypatch.setattr(cifar10, "KNOWN_MD5", {})
    with pytest.raises(DataNotFoundError, match=match) as err:
        load_cifar10(path)
    assert "odd.tar.gz:data_batch_2" in str(err.value)


def test_a_garbled_pickle_is_reported_as_corrupt(tmp_path, fake_cifar, monkeypatch):
    files, _ = fake_cifar.files()
    files["data_batch_5"] = files["data_batch_5"][:500]
    folder = fake_cifar.folder(tmp_path, files)
    monkeypatch.setattr(cifar10, "KNOWN_MD5", {})
    with pytest.raises(DataNotFoundError, match="data_batch_5 is corrupt: it cannot be read as a pickle"):
        load_cifar10(folder)


class SystemCall:
    """Unpickling this runs a shell command (the classic malicious pickle)."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class WriteFile:
    """Unpickling this runs Python source through exec."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return exec, (f"open({str(self.path)!r}, 'w').write('pwned')",)


@pytest.mark.parametrize("make_payload", [lambda m: SystemCall(f"touch '{m}'"), WriteFile])
@pytest.mark.parametrize("container", ["archive", "folder"])
def test_a_malicious_batch_is_refused_and_nothing_runs(tmp_path, fake_cifar, monkeypatch, make_payload, container):
    marker = tmp_path / "marker"
    payload = make_payload(marker)
    # The payload is real: an ordinary unpickler runs it.
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(make_payload(control), protocol=2))
    assert control.exists()

    evil = fake_cifar.dumps({b"data": payload, b"labels": [0]})  # Python 2 style, as the real files
    files, _ = fake_cifar.files(replace={"data_batch_3": evil})
    monkeypatch.setattr(cifar10, "KNOWN_MD5", {})
    where = (fake_cifar.archive(tmp_path / "evil.tar.gz", files) if container == "archive"
             else fake_cifar.folder(tmp_path, files))
    with pytest.raises(DataNotFoundError, match="refused before anything in it ran") as err:
        load_cifar10(where)
    assert "data_batch_3" in str(err.value)
    # named as Python 2 would name them: posix.system, __builtin__.exec
    assert ".system from" in str(err.value) or ".exec from" in str(err.value)
    assert not marker.exists()
