"""Unpack a bundle (see `controller/bundle.py` for its layout) where a replica needs it.

Used by provisioners that place files themselves (the local one); on a VM the replica
agent does the same with the standard library. Safe against a hostile archive: only
regular files, directories and symlinks that stay inside their tree; no absolute names,
no `..`, no devices.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath


class UnsafeBundle(ValueError):
    pass


def unpack(bundle: Path, workdir: Path, mount_path: Callable[[str], Path]) -> None:
    """Put `workdir/` into `workdir` and each mount at `mount_path(target)`."""
    with tarfile.open(bundle, mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        manifest = _manifest(tar, members)
        places = [("workdir", workdir)] if manifest.get("workdir") else []
        mounts = manifest.get("mounts")
        for mount in mounts if isinstance(mounts, list) else []:
            places.append((f"mounts/{int(mount['index'])}", mount_path(str(mount["target"]))))
        for prefix, dest in places:
            _extract(tar, members, prefix, dest)


def _manifest(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]) -> dict[str, object]:
    member = members.get("manifest.json")
    handle = tar.extractfile(member) if member is not None else None
    if handle is None:
        raise UnsafeBundle("the bundle has no manifest.json")
    data = json.loads(handle.read())
    if not isinstance(data, dict) or data.get("format") != 1:
        raise UnsafeBundle("unknown bundle format")
    return data


def _extract(
    tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], prefix: str, dest: Path
) -> None:
    own = [m for name, m in members.items() if name == prefix or name.startswith(prefix + "/")]
    for member in sorted(own, key=lambda m: m.name):
        rel = PurePosixPath(member.name).relative_to(prefix)
        if rel.is_absolute() or ".." in rel.parts:
            raise UnsafeBundle(f"unsafe name in bundle: {member.name}")
        target = dest / rel if rel.parts else dest
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
        elif member.isfile():
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            target.write_bytes(source.read())
            target.chmod(0o755 if member.mode & 0o100 else 0o644)
        elif member.issym():
            _link(member, rel, target)
        else:
            raise UnsafeBundle(f"unsupported entry in bundle: {member.name}")


def _link(member: tarfile.TarInfo, rel: PurePosixPath, target: Path) -> None:
    link = PurePosixPath(member.linkname)
    resolved = PurePosixPath(*rel.parent.parts, *link.parts)
    depth = 0
    for part in resolved.parts:
        depth += -1 if part == ".." else 1
        if depth < 0:
            raise UnsafeBundle(f"link leaves its tree: {member.name} -> {member.linkname}")
    if link.is_absolute():
        raise UnsafeBundle(f"absolute link in bundle: {member.name}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    target.symlink_to(member.linkname)
