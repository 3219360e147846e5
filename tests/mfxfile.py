"""Take model files apart and put them back together, for tests that craft bad files."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from mixedfx.modelfile import MANIFEST, manifest_checksum

Content = dict[str, bytes]


def members(path: Path) -> Content:
    """Member name -> bytes, in the archive's order."""
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def write(path: Path, content: Content) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, blob in content.items():
            zf.writestr(name, blob)


def manifest(content: Content) -> dict:
    return json.loads(content[MANIFEST])


def reseal(content: Content, doc: dict | None = None) -> Content:
    """The content with the manifest's member records and checksum made to agree.

    What a deliberate tamperer does: every checksum matches, so only the
    checks of the model itself can refuse the file.
    """
    doc = manifest(content) if doc is None else doc
    doc["members"] = {
        name: {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
        for name, blob in content.items()
        if name != MANIFEST
    }
    doc["sha256"] = manifest_checksum(doc)
    return {**content, MANIFEST: json.dumps(doc).encode()}


def npy(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def array(content: Content, name: str) -> np.ndarray:
    return np.load(io.BytesIO(content[f"arrays/{name}.npy"]), allow_pickle=False)
