"""The zip container of a model file: members written with their digests, read within bounds.

Every member is read to exactly the size the manifest declares (a zip
header that claims more or less is refused before anything is decompressed)
and checked against its SHA-256; arrays are parsed from ``.npy`` bytes
under the dtype and shape that the model needs, never with pickle.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import zipfile
from typing import IO, Any

import numpy as np

from .errors import ModelFileError

CHUNK = 2**20  # bytes decompressed at a time
MAX_NPY_HEADER = 4096  # numpy writes 128 bytes for any array the format holds


class Digest:
    """A writable that counts and hashes what passes through it to ``out``."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out, self.sha, self.size = out, hashlib.sha256(), 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.sha.update(view)
        self.size += len(view)
        return self.out.write(view)

    def entry(self) -> dict[str, Any]:
        """The manifest's record of the member: ``{"bytes": ..., "sha256": ...}``."""
        return {"bytes": self.size, "sha256": self.sha.hexdigest()}


EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest zip timestamp: saves do not depend on the clock


def member(name: str) -> zipfile.ZipInfo:
    """A deflated member ``name`` with a fixed timestamp, so equal models give equal files."""
    info = zipfile.ZipInfo(name, date_time=EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def write(zf: zipfile.ZipFile, name: str, content: bytes | np.ndarray) -> dict[str, Any]:
    """Write bytes, or an array as .npy, to member ``name`` streaming; its manifest record."""
    big = len(content) > 2**30 if isinstance(content, bytes) else content.nbytes > 2**30
    with zf.open(member(name), "w", force_zip64=big) as out:
        digest = Digest(out)
        if isinstance(content, bytes):
            digest.write(content)
        else:
            np.lib.format.write_array(digest, content, allow_pickle=False)
    return digest.entry()


def read(zf: zipfile.ZipFile, name: str, size: int, sha256: str | None) -> bytearray:
    """A member's bytes: exactly ``size`` of them, with that SHA-256 when given."""
    info = zf.getinfo(name)
    if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ModelFileError(f"model file member {name!r} is encrypted or oddly compressed")
    if info.file_size != size:
        raise ModelFileError(
            f"model file member {name!r} holds {info.file_size} bytes, the manifest says {size}"
        )
    buf = bytearray(size)
    view = memoryview(buf)
    with zf.open(info) as f:
        got = 0
        while got < size:
            chunk = f.read(min(CHUNK, size - got))
            if not chunk:
                raise ModelFileError(f"model file member {name!r} is truncated")
            view[got : got + len(chunk)] = chunk
            got += len(chunk)
    if sha256 is not None and hashlib.sha256(buf).hexdigest() != sha256:
        raise ModelFileError(
            f"model file member {name!r} fails its checksum (tampered or corrupted)"
        )
    return buf


def npy(buf: bytearray, name: str, dtypes: tuple[np.dtype, ...], shape: tuple[int, ...]) -> Any:
    """An array from .npy bytes with one of ``dtypes`` and ``shape``: no pickle, no copy."""
    head = io.BytesIO(bytes(buf[:MAX_NPY_HEADER]))
    try:
        version = np.lib.format.read_magic(head)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"unknown .npy version {version}")
        read_header = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
        got_shape, fortran, dtype = read_header(head)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise ModelFileError(f"model file: array {name!r} cannot be read safely: {exc}") from exc
    if dtype not in dtypes or tuple(got_shape) != shape or fortran:
        raise ModelFileError(
            f"model file is invalid: array {name!r} is {dtype} {tuple(got_shape)}"
            f"{' Fortran-ordered' if fortran else ''}; the model needs {dtypes[0]} {shape}"
        )
    offset, count = head.tell(), math.prod(shape)
    if len(buf) - offset != count * dtype.itemsize:
        raise ModelFileError(f"model file: array {name!r} has the wrong number of bytes")
    return np.frombuffer(buf, dtype=dtype, count=count, offset=offset).reshape(shape)


def npy_cap(dtypes: tuple[np.dtype, ...], shape: tuple[int, ...]) -> int:
    """The most bytes a .npy member of that shape can take."""
    return MAX_NPY_HEADER + max(d.itemsize for d in dtypes) * math.prod(shape)


def physical_memory() -> int | None:
    """Bytes of memory of this machine (None where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows)
        return None
