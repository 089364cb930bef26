"""Test bundles in the layout of docs/cloud-replicas.md ("The bundle"), built here rather
than by `controller/bundle.py` so that hostile archives (traversal, links out, devices) can
be made too:

    manifest.json   {"format": 1, "workdir": true, "mounts": [{"index", "target", "kind"}]}
    workdir/...     the workdir
    mounts/<i>      a mounted file, or mounts/<i>/... a mounted directory
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class FileMount:
    target: str
    content: bytes


@dataclass(frozen=True)
class DirMount:
    target: str
    files: Mapping[str, bytes]


@dataclass(frozen=True)
class Raw:
    """An entry written as given, whatever it says: for hostile bundles."""

    name: str
    kind: bytes = tarfile.REGTYPE
    content: bytes = b""
    linkname: str = ""


@dataclass(frozen=True)
class Bundle:
    path: Path
    digest: str
    url: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", self.path.as_uri())


def write_bundle(
    path: Path,
    workdir: Mapping[str, bytes] | None = None,
    mounts: Sequence[FileMount | DirMount] = (),
    raw: Sequence[Raw] = (),
) -> Bundle:
    manifest = {
        "format": 1,
        "workdir": workdir is not None,
        "mounts": [
            {"index": i, "target": m.target, "kind": "file" if isinstance(m, FileMount) else "dir"}
            for i, m in enumerate(mounts)
        ],
    }
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, Raw("manifest.json", content=json.dumps(manifest).encode()))
        if workdir is not None:
            _add(tar, Raw("workdir", tarfile.DIRTYPE))
            for name, content in sorted(workdir.items()):
                _add(tar, Raw(f"workdir/{name}", content=content))
        for i, mount in enumerate(mounts):
            if isinstance(mount, FileMount):
                _add(tar, Raw(f"mounts/{i}", content=mount.content))
                continue
            _add(tar, Raw(f"mounts/{i}", tarfile.DIRTYPE))
            for name, content in sorted(mount.files.items()):
                _add(tar, Raw(f"mounts/{i}/{name}", content=content))
        for entry in raw:
            _add(tar, entry)
    return Bundle(path, hashlib.sha256(path.read_bytes()).hexdigest())


def _add(tar: tarfile.TarFile, entry: Raw) -> None:
    info = tarfile.TarInfo(entry.name)
    info.type = entry.kind
    info.mode = 0o755 if entry.kind == tarfile.DIRTYPE else 0o644
    info.linkname = entry.linkname
    if entry.kind == tarfile.REGTYPE:
        info.size = len(entry.content)
        tar.addfile(info, io.BytesIO(entry.content))
    else:
        tar.addfile(info)
