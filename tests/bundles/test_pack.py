"""Packing a workdir and file mounts: content-addressed, SkyPilot's ignore rules, a size
limit checked before anything is written, and an unpacker that refuses hostile archives."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from controller.bundle import BundleError, BundleTooLarge, pack
from provisioners.bundle_unpack import UnsafeBundle, unpack


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def names(bundle: Path) -> set[str]:
    with tarfile.open(bundle) as tar:
        return {m.name for m in tar.getmembers()}


def test_the_same_tree_packs_to_the_same_digest_whatever_the_file_times(tmp_path: Path) -> None:
    src = tree(tmp_path / "app", {"app.py": "print(1)\n", "lib/util.py": "x = 1\n"})
    first = pack(src, {}, tmp_path / "out1")
    os.utime(src / "app.py", (1, 1))
    second = pack(src, {}, tmp_path / "out2")
    assert first is not None and second is not None
    assert first.digest == second.digest
    assert first.path.name == f"{first.digest}.tar.gz"


def test_a_changed_file_changes_the_digest(tmp_path: Path) -> None:
    src = tree(tmp_path / "app", {"app.py": "print(1)\n"})
    before = pack(src, {}, tmp_path / "out")
    (src / "app.py").write_text("print(2)\n")
    after = pack(src, {}, tmp_path / "out")
    assert before is not None and after is not None and before.digest != after.digest


def test_git_and_gitignored_files_stay_home(tmp_path: Path) -> None:
    src = tree(
        tmp_path / "app",
        {
            "app.py": "",
            ".git/config": "",
            ".gitignore": "*.log\n!keep.log\ndata/\n",
            "run.log": "",
            "keep.log": "",
            "data/big.bin": "",
            "sub/.gitignore": "secret.txt\n",
            "sub/secret.txt": "",
            "sub/ok.txt": "",
        },
    )
    bundle = pack(src, {}, tmp_path / "out")
    assert bundle is not None
    packed = names(bundle.path)
    assert "workdir/app.py" in packed and "workdir/keep.log" in packed
    assert "workdir/sub/ok.txt" in packed
    for left_out in ("workdir/.git", "workdir/run.log", "workdir/data", "workdir/sub/secret.txt"):
        assert left_out not in packed


def test_a_skyignore_replaces_the_gitignore_rules(tmp_path: Path) -> None:
    src = tree(
        tmp_path / "app",
        {".skyignore": "weights/\n", ".gitignore": "*.log\n", "run.log": "", "weights/w": ""},
    )
    bundle = pack(src, {}, tmp_path / "out")
    assert bundle is not None
    packed = names(bundle.path)
    assert "workdir/run.log" in packed, ".gitignore does not apply when .skyignore exists"
    assert "workdir/weights" not in packed


def test_file_mounts_land_at_their_targets(tmp_path: Path) -> None:
    app = tree(tmp_path / "app", {"app.py": "ok"})
    config = tree(tmp_path / "cfg", {"model.json": "{}"}) / "model.json"
    data = tree(tmp_path / "data", {"a.txt": "A", "b/c.txt": "C"})
    bundle = pack(app, {"/etc/model.json": config, "/data": data}, tmp_path / "out")
    assert bundle is not None
    dest = tmp_path / "replica"
    unpack(bundle.path, dest / "workdir", lambda target: dest / "root" / target.lstrip("/"))
    assert (dest / "workdir" / "app.py").read_text() == "ok"
    assert (dest / "root" / "etc" / "model.json").read_text() == "{}"
    assert (dest / "root" / "data" / "b" / "c.txt").read_text() == "C"


def test_an_executable_stays_executable(tmp_path: Path) -> None:
    src = tree(tmp_path / "app", {"start.sh": "#!/bin/sh\n"})
    (src / "start.sh").chmod(0o755)
    bundle = pack(src, {}, tmp_path / "out")
    assert bundle is not None
    unpack(bundle.path, tmp_path / "w", lambda t: tmp_path / "m" / t.lstrip("/"))
    assert os.access(tmp_path / "w" / "start.sh", os.X_OK)


def test_a_link_inside_is_kept_and_one_leading_out_is_skipped(tmp_path: Path) -> None:
    src = tree(tmp_path / "app", {"real.txt": "r"})
    (src / "inside.txt").symlink_to("real.txt")
    (src / "outside.txt").symlink_to("/etc/passwd")
    bundle = pack(src, {}, tmp_path / "out")
    assert bundle is not None
    assert "workdir/inside.txt" in names(bundle.path)
    assert "workdir/outside.txt" not in names(bundle.path)
    assert any("outside.txt" in w for w in bundle.warnings)


def test_too_many_bytes_are_refused_with_both_sizes_before_anything_is_written(
    tmp_path: Path,
) -> None:
    src = tree(tmp_path / "app", {"a.bin": "x" * 4000, "b.bin": "y" * 4000})
    out = tmp_path / "out"
    with pytest.raises(BundleTooLarge) as err:
        pack(src, {}, out, max_bytes=5000)
    assert "limit is SERVE_MAX_BUNDLE_BYTES=5000" in str(err.value)
    assert not out.exists() or list(out.iterdir()) == []


def test_a_missing_mount_source_names_the_mount(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"file_mounts\./data: .* does not exist"):
        pack(None, {"/data": tmp_path / "nope"}, tmp_path / "out")


def _hostile(tmp_path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        manifest = b'{"format": 1, "workdir": true, "mounts": []}'
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data) if data else None)
    return path


def test_the_unpacker_refuses_a_name_leaving_the_tree(tmp_path: Path) -> None:
    bundle = _hostile(tmp_path, tarfile.TarInfo("workdir/../../escape.txt"), b"x")
    with pytest.raises(UnsafeBundle):
        unpack(bundle, tmp_path / "w", lambda t: tmp_path / "m" / t.lstrip("/"))
    assert not (tmp_path / "escape.txt").exists()


def test_the_unpacker_refuses_a_link_leaving_the_tree(tmp_path: Path) -> None:
    link = tarfile.TarInfo("workdir/link")
    link.type = tarfile.SYMTYPE
    link.linkname = "../../etc/passwd"
    with pytest.raises(UnsafeBundle):
        unpack(_hostile(tmp_path, link), tmp_path / "w", lambda t: tmp_path / "m" / t.lstrip("/"))
    assert not (tmp_path / "w" / "link").exists()
