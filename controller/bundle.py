"""Pack a version's `workdir` and local `file_mounts` into one content-addressed bundle.

The bundle is a tar.gz whose bytes depend only on the files' paths, contents and
executable bits (sorted entries, zeroed times and owners, a gzip header without a time), so
the same tree always has the same SHA-256 and is stored and uploaded once:

    manifest.json   {"format": 1, "workdir": true, "mounts": [{"index": 0,
                     "target": "/data/x.json", "kind": "file"}]}
    workdir/...     the workdir
    mounts/0        a mounted file, or mounts/1/... a mounted directory

What is left out follows SkyPilot: `.git` always; in each packed directory, the patterns of
its `.skyignore` if it has one, else of every `.gitignore` below it (each relative to its
own folder) and `.git/info/exclude`. A symlink is kept when it points inside the packed
directory and skipped (with a warning) otherwise. Too many bytes raise `BundleTooLarge`
while walking, before anything is written.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from controller.bundle_ignore import IgnoreRules

FORMAT = 1
DEFAULT_MAX_BYTES = 512 * 1024 * 1024


class BundleError(ValueError):
    """A workdir or mount that cannot be packed; the message names it and the fix."""


class BundleTooLarge(BundleError):
    def __init__(self, what: str, size: int, limit: int):
        super().__init__(
            f"{what} holds more than {_mib(limit)} (at least {_mib(size)}); the limit is "
            f"SERVE_MAX_BUNDLE_BYTES={limit}. Leave large files out with a .skyignore, or "
            "put them in a bucket and mount it: '/remote/path: s3://bucket/path'"
        )
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class Entry:
    """One file, directory or link to pack, with its name inside the bundle."""

    name: str
    source: Path
    kind: str  # "file" | "dir" | "link"
    size: int = 0
    executable: bool = False
    link_target: str = ""


@dataclass
class Packing:
    """What a pack found: the entries, the manifest and what it left out."""

    entries: list[Entry] = field(default_factory=list)
    manifest: dict[str, object] = field(default_factory=dict)
    content_bytes: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PackedBundle:
    digest: str
    path: Path
    size: int
    files: int
    content_bytes: int
    warnings: tuple[str, ...] = ()


def plan(
    workdir: Path | None, mounts: dict[str, Path], max_bytes: int = DEFAULT_MAX_BYTES
) -> Packing:
    """Walk what would be packed, refusing a missing path or too many bytes."""
    packing = Packing(manifest={"format": FORMAT, "workdir": workdir is not None, "mounts": []})
    if workdir is not None:
        _add_tree(packing, workdir, "workdir", "workdir", max_bytes)
    for index, (target, source) in enumerate(sorted(mounts.items())):
        where = f"file_mounts.{target}"
        if source.is_dir():
            kind = "dir"
            _add_tree(packing, source, f"mounts/{index}", where, max_bytes)
        elif source.is_file():
            kind = "file"
            _add_file(packing, source, f"mounts/{index}", where, max_bytes)
        else:
            raise BundleError(f"{where}: {source} does not exist; check the path")
        mounts_list = packing.manifest["mounts"]
        assert isinstance(mounts_list, list)
        mounts_list.append({"index": index, "target": target, "kind": kind})
    return packing


def pack(
    workdir: Path | None,
    mounts: dict[str, Path],
    dest_dir: Path,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> PackedBundle | None:
    """The bundle for `workdir` and `mounts` in `dest_dir/<sha256>.tar.gz` (None if there
    is nothing to pack). Written to a temporary file first, then renamed."""
    if workdir is None and not mounts:
        return None
    packing = plan(workdir, mounts, max_bytes)
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=".pack-", suffix=".tar.gz")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as raw:
            sink = _Hashing(raw, digest)
            with gzip.GzipFile(fileobj=sink, mode="wb", mtime=0, compresslevel=6) as gz:
                _write_tar(gz, packing)
        final = dest_dir / f"{digest.hexdigest()}.tar.gz"
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    files = sum(1 for e in packing.entries if e.kind == "file")
    return PackedBundle(
        digest.hexdigest(),
        final,
        final.stat().st_size,
        files,
        packing.content_bytes,
        tuple(packing.warnings),
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _add_tree(packing: Packing, root: Path, prefix: str, where: str, max_bytes: int) -> None:
    if not root.is_dir():
        raise BundleError(f"{where}: {root} is not a directory; check the path")
    rules = IgnoreRules.for_root(root)
    packing.entries.append(Entry(prefix, root, "dir"))
    for path, kind in _walk(root, rules, packing, where):
        name = f"{prefix}/{path.relative_to(root).as_posix()}"
        if kind == "dir":
            packing.entries.append(Entry(name, path, "dir"))
        elif kind == "link":
            packing.entries.append(Entry(name, path, "link", link_target=os.readlink(path)))
        else:
            _add_file(packing, path, name, where, max_bytes)


def _add_file(packing: Packing, path: Path, name: str, where: str, max_bytes: int) -> None:
    info = path.stat()
    packing.content_bytes += info.st_size
    if packing.content_bytes > max_bytes:
        raise BundleTooLarge(where, packing.content_bytes, max_bytes)
    executable = bool(info.st_mode & stat.S_IXUSR)
    packing.entries.append(Entry(name, path, "file", info.st_size, executable))


def _walk(
    root: Path, rules: IgnoreRules, packing: Packing, where: str
) -> Iterator[tuple[Path, str]]:
    """(path, kind) under `root` in sorted order, ignored ones and `.git` left out."""
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if d != ".git" and not rules.ignored(here / d, is_dir=True)
        )
        for name in sorted([*dirnames, *filenames]):
            path = here / name
            if name in filenames and rules.ignored(path, is_dir=False):
                continue
            if path.is_symlink():
                if _link_stays_inside(path, root):
                    yield path, "link"
                else:
                    packing.warnings.append(f"{where}: skipped {path}: it links outside")
                if name in dirnames:
                    dirnames.remove(name)
                continue
            yield path, "dir" if name in dirnames else "file"


def _link_stays_inside(link: Path, root: Path) -> bool:
    target = os.readlink(link)
    if os.path.isabs(target):
        return False
    resolved = (link.parent / target).resolve()
    return resolved == root.resolve() or root.resolve() in resolved.parents


def _write_tar(out: gzip.GzipFile, packing: Packing) -> None:
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        manifest = json.dumps(packing.manifest, sort_keys=True).encode()
        tar.addfile(
            _info("manifest.json", tarfile.REGTYPE, 0o644, len(manifest)), io.BytesIO(manifest)
        )
        for entry in sorted(packing.entries, key=lambda e: e.name):
            if entry.kind == "dir":
                tar.addfile(_info(entry.name, tarfile.DIRTYPE, 0o755, 0))
            elif entry.kind == "link":
                info = _info(entry.name, tarfile.SYMTYPE, 0o777, 0)
                info.linkname = entry.link_target
                tar.addfile(info)
            else:
                mode = 0o755 if entry.executable else 0o644
                with entry.source.open("rb") as fh:
                    tar.addfile(_info(entry.name, tarfile.REGTYPE, mode, entry.size), fh)


def _info(name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class _Hashing(io.RawIOBase):
    """A write-only file that hashes what passes through it."""

    def __init__(self, raw: IO[bytes], digest: hashlib._Hash) -> None:
        self._raw = raw
        self._digest = digest

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._digest.update(data)
        return self._raw.write(data)


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"
