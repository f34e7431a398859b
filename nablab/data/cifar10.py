"""CIFAR-10 from the official python-version files, read without unsafe unpickling.

Give :func:`load_cifar10` one of (or set ``$NABLAB_DATA`` to it):

- the archive ``cifar-10-python.tar.gz`` (read in place, never extracted);
- its extracted folder ``cifar-10-batches-py``;
- a folder holding either of them.

Integrity: the archive is checked against the MD5 published on the CIFAR-10
page, and each batch file against the MD5 of the official file (the
checksums torchvision publishes), whenever the file carries its official
name. The archive is read as a stream, never extracted: a member is refused
before any of its bytes are read when it is larger than the official file of
that name, when it is a link or a device, or when its path is absolute or
climbs out with ``..``; and reading stops once more bytes have been
decompressed than the official archive holds (a small archive that inflates
to gigabytes is refused early, naming the member). The batches are pickles; they are read by
:class:`nablab.data.safe_pickle.RestrictedUnpickler`, which builds only
dicts, lists, bytes, ints and NumPy numeric arrays and refuses every other
global before anything runs. Anything missing, corrupt or malformed raises
:class:`~nablab.errors.DataNotFoundError` saying what is wrong and how
to supply the files.

>>> load_cifar10("/no/such/place")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
nablab.errors.DataNotFoundError: CIFAR-10 not found: /no/such/place does not exist. ...
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import stat
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from nablab.errors import DataNotFoundError
from nablab.data.safe_pickle import UnsafePickleError, restricted_loads

__all__ = ["load_cifar10", "find_cifar10", "ARCHIVE_NAME", "FOLDER_NAME", "KNOWN_MD5", "KNOWN_SIZE",
           "HOW_TO_GET"]

ARCHIVE_NAME = "cifar-10-python.tar.gz"
FOLDER_NAME = "cifar-10-batches-py"
PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
BATCH_FILES = TRAIN_FILES + (TEST_FILE, META_FILE)

#: MD5 of each official file, by name. A file is checked when its name is here.
KNOWN_MD5 = {
    ARCHIVE_NAME: "c58f30108f718f92721af3b95e74349a",  # published on the CIFAR-10 page
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}

#: Size in bytes of each official file: no member or file of that name may be larger.
KNOWN_SIZE = {
    "data_batch_1": 31035704, "data_batch_2": 31035320, "data_batch_3": 31035999,
    "data_batch_4": 31035696, "data_batch_5": 31035623, "test_batch": 31035526,
    "batches.meta": 158,
}
_OTHER_MAX = 1 << 20  # other regular members (the official readme.html has 88 bytes)
# Everything the official tar holds, with room for its headers: decompressing more is refused.
_ARCHIVE_MAX = sum(KNOWN_SIZE.values()) + (1 << 20)
_CHUNK = 1 << 20

HOW_TO_GET = (
    f"To supply CIFAR-10, download the python version ({ARCHIVE_NAME}, about 163 MB) from the "
    f"CIFAR-10 page at the University of Toronto ({PAGE}), then pass its path, the folder "
    f"holding it, or the extracted {FOLDER_NAME} folder with --data PATH, or set NABLAB_DATA=PATH."
)

_IMAGE_SIZE = 3 * 32 * 32


def find_cifar10(path=None) -> Path:
    """The archive file or batch folder that ``path`` (or ``$NABLAB_DATA``) points to.

    In a folder holding both the extracted batches and the archive, the
    batches win (no decompression needed).

    ``path`` may also be a folder holding the archive or the extracted folder.

    >>> from nablab.data import find_cifar10
    >>> find_cifar10("/no/such/place")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nablab.errors.DataNotFoundError: CIFAR-10 not found: /no/such/place does not exist. To ...
    """
    if path is None:
        path = os.environ.get("NABLAB_DATA") or None
        if path is None:
            raise DataNotFoundError("CIFAR-10 not found: no path was given and NABLAB_DATA is not set. "
                                    + HOW_TO_GET)
    p = Path(path).expanduser()
    if not p.exists():
        raise DataNotFoundError(f"CIFAR-10 not found: {p} does not exist. " + HOW_TO_GET)
    if p.is_file():
        return p
    candidates = [p, p / FOLDER_NAME]
    for folder in candidates:
        if folder.is_dir() and all((folder / name).is_file() for name in BATCH_FILES):
            return folder
    if (p / ARCHIVE_NAME).is_file():
        return p / ARCHIVE_NAME
    partial = next((f for f in candidates if f.is_dir() and any((f / n).exists() for n in BATCH_FILES)), None)
    if partial is not None:
        missing = [n for n in BATCH_FILES if not (partial / n).is_file()]
        raise DataNotFoundError(f"CIFAR-10 folder {partial} is incomplete: {', '.join(missing)} "
                                f"missing (or not regular files). " + HOW_TO_GET)
    raise DataNotFoundError(
        f"CIFAR-10 not found in {p}: expected {ARCHIVE_NAME}, a {FOLDER_NAME} folder, or the files "
        f"{', '.join(BATCH_FILES)} there. " + HOW_TO_GET
    )


def _md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_md5(name: str, digest: str, where: str) -> None:
    expected = KNOWN_MD5.get(name)
    if expected is not None and digest != expected:
        raise DataNotFoundError(
            f"CIFAR-10 file {where} is corrupt: its MD5 is {digest}, but the official {name} has "
            f"MD5 {expected} (an incomplete download or a different file). Download it again. " + HOW_TO_GET
        )


def _unpickle(blob: bytes, digest: str, name: str, where: str):
    _check_md5(name, digest, where)
    try:
        return restricted_loads(blob, encoding="bytes", source=where)
    except UnsafePickleError as exc:
        raise DataNotFoundError(f"CIFAR-10 file {where} is not a plain data batch and was refused "
                                f"before anything in it ran: {exc}. " + HOW_TO_GET) from exc
    except Exception as exc:  # truncated or garbled pickle data
        raise DataNotFoundError(f"CIFAR-10 file {where} is corrupt: it cannot be read as a pickle "
                                f"({type(exc).__name__}: {exc}). " + HOW_TO_GET) from exc


def _size_limit(name: str) -> int:
    return KNOWN_SIZE.get(name, _OTHER_MAX)


def _read_bounded(f, size: int, where: str) -> tuple[bytes, str]:
    """``size`` bytes from ``f`` and their MD5, read in chunks."""
    digest, parts, left = hashlib.md5(), [], size
    while left > 0:
        chunk = f.read(min(left, _CHUNK))
        if not chunk:
            raise DataNotFoundError(f"CIFAR-10 file {where} is truncated: it ends {left} bytes early. " + HOW_TO_GET)
        digest.update(chunk)
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts), digest.hexdigest()


def _batch(obj, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(obj, dict) or b"data" not in obj or b"labels" not in obj:
        keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise DataNotFoundError(f"CIFAR-10 file {where} is not a data batch: expected a dict with "
                                f"b'data' and b'labels', got {keys}. " + HOW_TO_GET)
    data, labels = obj[b"data"], obj[b"labels"]
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == _IMAGE_SIZE):
        desc = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataNotFoundError(f"CIFAR-10 file {where}: b'data' must be a uint8 array of shape "
                                f"(N, {_IMAGE_SIZE}), got a {desc}. " + HOW_TO_GET)
    if not isinstance(labels, (list, np.ndarray)) or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels):
        raise DataNotFoundError(f"CIFAR-10 file {where}: b'labels' must be a list of ints. " + HOW_TO_GET)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(labels) != len(data):
        raise DataNotFoundError(f"CIFAR-10 file {where}: {len(labels)} labels for {len(data)} images. "
                                + HOW_TO_GET)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        bad = labels[(labels < 0) | (labels > 9)][0]
        raise DataNotFoundError(f"CIFAR-10 file {where}: label {bad} is outside 0..9. " + HOW_TO_GET)
    return data.reshape(-1, 3, 32, 32), labels


def _classes(obj, where: str) -> list[str]:
    names = obj.get(b"label_names") if isinstance(obj, dict) else None
    if not isinstance(names, list) or len(names) != 10 or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataNotFoundError(f"CIFAR-10 file {where}: expected b'label_names', a list of 10 names. "
                                + HOW_TO_GET)
    return [n.decode("ascii") if isinstance(n, bytes) else n for n in names]


class _Capped:
    """A file's ``read`` that refuses to return more than ``limit`` bytes in total."""

    def __init__(self, f, limit: int, archive: Path):
        self.f, self.left, self.archive, self.member = f, limit, archive, None

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(self.left + 1 if n is None or n < 0 else min(n, self.left + 1))
        self.left -= len(data)
        if self.left < 0:
            at = f" while reading {self.member}" if self.member else ""
            raise DataNotFoundError(f"CIFAR-10 archive {self.archive} decompresses to more than {_ARCHIVE_MAX} "
                                    f"bytes{at}, more than the official archive holds; refused. " + HOW_TO_GET)
        return data


def _decompressed(raw):
    """The decompressed stream of an opened archive (gzip, bzip2, xz, or a plain tar)."""
    magic = raw.peek(6)[:6] if hasattr(raw, "peek") else b""
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(raw)
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw)
    return raw


_EXTENDED_HEADERS = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                     tarfile.GNUTYPE_LONGLINK)
_HEADER_MAX = 1 << 16  # a pax header or GNU long name is a few hundred bytes


class _HugeHeader(Exception):
    pass


class _TarInfo(tarfile.TarInfo):
    """Refuses an extended header (pax, GNU long name) too large to be one, before tarfile reads it into memory."""

    def _proc_member(self, tarfile_):
        if self.type in _EXTENDED_HEADERS and self.size > _HEADER_MAX:
            raise _HugeHeader(f"an extended tar header (type {self.type!r}) of {self.size} bytes")
        return super()._proc_member(tarfile_)


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse a member we must never follow or read much of, before any of its bytes are read."""
    where = f"CIFAR-10 archive {archive}: member {member.name!r}"
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise DataNotFoundError(f"{where} has a path outside the archive's folder; refused. " + HOW_TO_GET)
    if not (member.isfile() or member.isdir()):
        kind = ("a symbolic link" if member.issym() else "a hard link" if member.islnk()
                else "a device" if member.isdev() else f"of tar type {member.type!r}")
        target = f" to {member.linkname!r}" if member.issym() or member.islnk() else ""
        raise DataNotFoundError(f"{where} is {kind}{target}; the official archive holds only files and "
                                "folders, so it was refused. " + HOW_TO_GET)
    limit = _size_limit(path.name)
    if member.isfile() and member.size > limit:
        official = "the official file of that name has" if path.name in KNOWN_SIZE else "other members have at most"
        raise DataNotFoundError(f"{where} is {member.size} bytes, but {official} {limit}; refused before "
                                "reading it. " + HOW_TO_GET)


def _read_members(archive: Path):
    """Yield (name, bytes, md5) for the batch files in the archive, in archive order, as a stream."""
    _check_md5(archive.name, _md5_file(archive), str(archive))
    seen = set()
    try:
        with open(archive, "rb") as raw, _decompressed(raw) as stream:
            capped = _Capped(stream, _ARCHIVE_MAX, archive)
            with tarfile.open(fileobj=capped, mode="r|", tarinfo=_TarInfo) as tar:
                for member in tar:
                    _check_member(member, archive)
                    name = PurePosixPath(member.name).name
                    if not member.isfile() or name not in BATCH_FILES:
                        continue
                    if name in seen:
                        raise DataNotFoundError(f"CIFAR-10 archive {archive} holds {name} twice ({member.name}); "
                                                "refused. " + HOW_TO_GET)
                    seen.add(name)
                    capped.member = member.name
                    blob, digest = _read_bounded(tar.extractfile(member), member.size, f"{archive}:{name}")
                    yield name, blob, digest
    except DataNotFoundError:
        raise
    except _HugeHeader as exc:
        raise DataNotFoundError(f"CIFAR-10 archive {archive} holds {exc}; refused before reading it. "
                                + HOW_TO_GET) from None
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError, ValueError) as exc:
        raise DataNotFoundError(f"CIFAR-10 archive {archive} is corrupt or truncated: it cannot be read "
                                f"as a .tar.gz archive ({type(exc).__name__}: {exc}). " + HOW_TO_GET) from exc
    missing = [n for n in BATCH_FILES if n not in seen]
    if missing:
        raise DataNotFoundError(f"CIFAR-10 archive {archive} lacks {', '.join(missing)}: it is not the "
                                f"python version of CIFAR-10 ({ARCHIVE_NAME}). " + HOW_TO_GET)


def _read_folder(folder: Path):
    for name in BATCH_FILES:
        where = f"{folder / name}"
        with open(folder / name, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise DataNotFoundError(f"CIFAR-10 file {where} is not a regular file. " + HOW_TO_GET)
            if info.st_size > _size_limit(name):
                raise DataNotFoundError(f"CIFAR-10 file {where} is {info.st_size} bytes, but the official "
                                        f"{name} has {_size_limit(name)}; refused before reading it. " + HOW_TO_GET)
            blob, digest = _read_bounded(f, info.st_size, where)
        yield name, blob, digest


def load_cifar10(path=None) -> dict:
    """CIFAR-10 as arrays: ``x_train`` (50000, 3, 32, 32) uint8, ``y_train`` (50000,) int64,
    ``x_test`` (10000, 3, 32, 32) uint8, ``y_test`` (10000,) int64, ``classes`` (10 names).

    ``path`` is the archive, its extracted folder, or a folder holding one of
    them; by default ``$NABLAB_DATA``. Images are channel-first (N, C, H, W),
    as the official rows store them (1024 red, then green, then blue values).

    Each file is checked against the official MD5 sums before it is read (a restricted unpickler
    reads the batches); what is missing or damaged raises :class:`~nablab.errors.DataNotFoundError`.

    >>> from nablab.data import load_cifar10
    >>> load_cifar10("/no/such/place")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nablab.errors.DataNotFoundError: CIFAR-10 not found: /no/such/place does not exist. To ...
    """
    source = find_cifar10(path)
    members = _read_folder(source) if source.is_dir() else _read_members(source)
    batches, classes = {}, None
    for name, blob, digest in members:
        where = f"{source}/{name}" if source.is_dir() else f"{source}:{name}"
        obj = _unpickle(blob, digest, name, where)
        if name == META_FILE:
            classes = _classes(obj, where)
        else:
            batches[name] = _batch(obj, where)
    x_train = np.concatenate([batches[n][0] for n in TRAIN_FILES])
    y_train = np.concatenate([batches[n][1] for n in TRAIN_FILES])
    x_test, y_test = batches[TEST_FILE]
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, "classes": classes}
