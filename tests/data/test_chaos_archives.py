"""Chaos tests for CIFAR-10 archives: bombs, path traversal, links, devices, corruption.

Every archive is built here from zeros and the small fake batches. Nothing
large is ever written: a bomb is a tar header that claims a huge member (its
data never follows, or follows as repeated tiny gzip members), so the test
passes only if the reader refuses at the header, before decompressing much.
Each case must end in a DataNotFoundError that names the archive and the
member, with nothing extracted anywhere.
"""

import gzip
import random
import tarfile
import tracemalloc

import numpy as np
import pytest

from nablab.data import DataNotFoundError, load_cifar10
from nablab.data import cifar10

GiB = 1 << 30
ZEROS_MIB = gzip.compress(bytes(1 << 20), compresslevel=9)  # about 1 KB that inflates to 1 MiB


def header(name, size=0, type=tarfile.REGTYPE, linkname="", pax=None):
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname = size, type, linkname
    info.pax_headers = pax or {}
    return info.tobuf(format=tarfile.PAX_FORMAT)


def member(name, blob):
    padding = bytes(-len(blob) % tarfile.BLOCKSIZE)
    return header(name, len(blob)) + blob + padding


def batches(files):
    return b"".join(member(f"cifar-10-batches-py/{name}", blob) for name, blob in files.items())


def write_gz(path, *parts, zero_mibs=0, end=True):
    """A .tar.gz of ``parts``, then ``zero_mibs`` MiB of zeros as repeated gzip members (cheap to store)."""
    head = gzip.compress(b"".join(parts), compresslevel=1)
    tail = gzip.compress(bytes(2 * tarfile.BLOCKSIZE)) if end else b""  # the end-of-archive marker
    path.write_bytes(head + ZEROS_MIB * zero_mibs + tail)
    return path


@pytest.fixture
def fakes(fake_cifar, monkeypatch):
    files, expected = fake_cifar.files()
    monkeypatch.setattr(cifar10, "KNOWN_MD5", fake_cifar.md5(files))  # member checksums only
    return files, expected


def refused(path, *fragments, seconds=10, deadline=None):
    """Load ``path``, expecting a refusal whose message holds every fragment; returns the message."""
    tracemalloc.start()
    try:
        with deadline(seconds):
            with pytest.raises(DataNotFoundError) as err:
                load_cifar10(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert peak < 64 << 20, f"{peak / 2**20:.0f} MiB allocated before refusing"
    return message


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("size", [64 << 20, 8 * GiB, 9 * 1024 * GiB])
def test_a_batch_claiming_more_than_the_official_size_is_refused_at_its_header(tmp_path, fakes, deadline, size):
    files, _ = fakes
    path = tmp_path / "bomb.tar.gz"
    # 64 MiB really follows the header (as zeros); the bigger claims are followed by 64 MiB and then nothing.
    write_gz(path, header("cifar-10-batches-py/data_batch_1", size), zero_mibs=64, end=size == 64 << 20)
    assert path.stat().st_size < 200_000
    before = listing(tmp_path)
    refused(path, "'cifar-10-batches-py/data_batch_1'", f"is {size} bytes", "official file of that name has 31035704",
            "refused before reading it", deadline=deadline)
    assert listing(tmp_path) == before


def test_a_huge_member_of_another_name_is_refused_too(tmp_path, fakes, deadline):
    files, _ = fakes
    path = write_gz(tmp_path / "bomb.tar.gz", batches(files), header("cifar-10-batches-py/readme.html", GiB),
                    zero_mibs=32, end=False)
    refused(path, "'cifar-10-batches-py/readme.html'", f"is {GiB} bytes", "refused", deadline=deadline)


def test_decompressing_more_than_the_official_archive_holds_is_refused(tmp_path, fakes, deadline, monkeypatch):
    """Many members, each small enough, that add up: the running total stops the read."""
    files, _ = fakes
    monkeypatch.setattr(cifar10, "_ARCHIVE_MAX", 6 << 20)  # the real cap is 187 MB; the rule is the same
    parts = [member(f"cifar-10-batches-py/extra_{i}", bytes(1 << 20)) for i in range(10)]
    path = write_gz(tmp_path / "many.tar.gz", *parts, batches(files))
    refused(path, "decompresses to more than 6291456 bytes", "more than the official archive holds",
            deadline=deadline)


def test_an_oversized_extended_header_is_refused_before_tarfile_reads_it(tmp_path, fakes, deadline):
    files, _ = fakes
    pax = header("cifar-10-batches-py/data_batch_1", len(files["data_batch_1"]), pax={"comment": "x" * (1 << 20)})
    path = write_gz(tmp_path / "pax.tar.gz", pax + files["data_batch_1"])
    refused(path, "extended tar header", "refused before reading it", deadline=deadline)


@pytest.mark.parametrize("name", ["../escaped", "/tmp/escaped-absolutely", "cifar-10-batches-py/../../data_batch_1",
                                  "./../data_batch_2"])
@pytest.mark.parametrize("where", ["first", "last"])
def test_a_path_leaving_the_archive_is_refused(tmp_path, fakes, deadline, name, where):
    files, _ = fakes
    evil = member(name, b"overwritten")
    parts = (evil, batches(files)) if where == "first" else (batches(files), evil)
    root = tmp_path / "inside"
    root.mkdir()
    path = write_gz(root / "traversal.tar.gz", *parts)
    before = listing(tmp_path)
    refused(path, repr(name), "a path outside the archive's folder", deadline=deadline)
    assert listing(tmp_path) == before and not (tmp_path / "escaped").exists()


@pytest.mark.parametrize("kind, type, linkname, says", [
    ("symlink", tarfile.SYMTYPE, "/etc/passwd", "is a symbolic link to '/etc/passwd'"),
    ("hardlink", tarfile.LNKTYPE, "cifar-10-batches-py/test_batch", "is a hard link to 'cifar-10-batches-py/test_batch'"),
    ("character device", tarfile.CHRTYPE, "", "is a device"),
    ("block device", tarfile.BLKTYPE, "", "is a device"),
    ("fifo", tarfile.FIFOTYPE, "", "is a device"),
    ("unknown type", b"Z", "", "of tar type b'Z'"),
])
def test_links_and_devices_are_refused_and_never_followed(tmp_path, fakes, deadline, kind, type, linkname, says):
    files, _ = fakes
    del files["data_batch_1"]
    link = header("cifar-10-batches-py/data_batch_1", 0, type=type, linkname=linkname)
    path = write_gz(tmp_path / "links.tar.gz", batches(files), link)
    before = listing(tmp_path)
    refused(path, "'cifar-10-batches-py/data_batch_1'", says, deadline=deadline)
    assert listing(tmp_path) == before


def test_a_batch_given_twice_is_refused(tmp_path, fakes, deadline):
    files, _ = fakes
    path = write_gz(tmp_path / "twice.tar.gz", batches(files), member("other/test_batch", files["test_batch"]))
    refused(path, "holds test_batch twice (other/test_batch)", deadline=deadline)


def test_the_streaming_reader_still_reads_a_good_archive(tmp_path, fakes, deadline):
    """The hand-built archive of these tests is a real one: without its bomb it loads."""
    files, expected = fakes
    path = write_gz(tmp_path / "good.tar.gz", batches(files), member("cifar-10-batches-py/readme.html", b"<p>hi</p>"))
    with deadline(10):
        data = load_cifar10(path)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(data[key], expected[key])


def test_an_oversized_file_in_the_extracted_folder_is_refused_before_reading(tmp_path, fake_cifar, fakes, deadline):
    files, _ = fakes
    folder = fake_cifar.folder(tmp_path, files)
    with open(folder / "data_batch_3", "r+b") as f:
        f.truncate(8 * GiB)  # sparse: no disk space used
    refused(folder, "data_batch_3 is 8589934592 bytes", "official data_batch_3 has 31035999", deadline=deadline)


def test_a_corrupted_archive_either_loads_the_same_data_or_is_refused(tmp_path, fakes, deadline):
    """Truncations and byte flips at random places: never a raw exception, never different data."""
    files, expected = fakes
    good = write_gz(tmp_path / "good.tar.gz", batches(files)).read_bytes()
    rng = random.Random(11)
    outcomes = {"loaded": 0, "refused": 0}
    path = tmp_path / "chaos.tar.gz"
    with deadline(60):
        for trial in range(60):
            blob = bytearray(good)
            if trial % 2:
                blob = blob[:rng.randrange(len(blob))]
            else:
                for _ in range(rng.randint(1, 3)):
                    blob[rng.randrange(len(blob))] ^= 1 << rng.randrange(8)
            path.write_bytes(bytes(blob))
            try:
                data = load_cifar10(path)
            except DataNotFoundError as exc:
                assert str(path) in str(exc)
                outcomes["refused"] += 1
                continue
            for key in ("x_train", "y_train", "x_test", "y_test"):
                np.testing.assert_array_equal(data[key], expected[key])
            outcomes["loaded"] += 1
    assert outcomes["refused"] >= 40  # nearly every change is caught, by gzip, tar or the member MD5


def test_the_official_names_are_capped_at_the_official_sizes():
    assert cifar10.KNOWN_SIZE["data_batch_1"] == 31035704 and cifar10.KNOWN_SIZE["batches.meta"] == 158
    assert set(cifar10.KNOWN_SIZE) == set(cifar10.BATCH_FILES)
    # The published archive's members fit under the running cap.
    assert cifar10._ARCHIVE_MAX > sum(cifar10.KNOWN_SIZE.values())
