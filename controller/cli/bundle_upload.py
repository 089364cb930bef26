"""Pack a service's workdir and local file mounts and hand the bundle to the controller.

Packing happens here, on the operator's machine, where the paths are; the controller may
run elsewhere. The limit is the controller's (`GET /api/v1/controller`), checked while
walking, so a too-large workdir is refused before anything is created.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console

from controller.bundle import BundleError, pack
from controller.cli.errors import fail
from controller.client import ControllerClient
from controller.spec import ServiceSpec


def sources(spec: ServiceSpec, cwd: Path) -> tuple[Path | None, dict[str, Path]]:
    """The workdir and local mount sources, relative paths taken from `cwd` (SkyPilot's
    rule), made absolute."""
    workdir = (cwd / Path(spec.workdir).expanduser()).resolve() if spec.workdir else None
    mounts = {t: (cwd / Path(s).expanduser()).resolve() for t, s in spec.local_mounts().items()}
    return workdir, mounts


def upload_bundle(client: ControllerClient, spec: ServiceSpec, console: Console) -> str | None:
    """The digest of the uploaded bundle (None when there is nothing to pack)."""
    workdir, mounts = sources(spec, Path.cwd())
    if workdir is None and not mounts:
        return None
    limit = int(client.json("GET", "/api/v1/controller").get("max_bundle_bytes") or 0)
    with tempfile.TemporaryDirectory(prefix="serve-bundle-") as tmp:
        with console.status("packing workdir and file mounts"):
            try:
                bundle = pack(workdir, mounts, Path(tmp), limit or 512 * 1024 * 1024)
            except BundleError as exc:
                raise fail(str(exc)) from None
        assert bundle is not None
        for warning in bundle.warnings:
            console.print(f"[yellow]warning:[/] {warning}")
        path = f"/api/v1/bundles/{bundle.digest}"
        if client.call_status("HEAD", path) != 200:
            size = bundle.size / (1024 * 1024)
            uploading = console.status(f"uploading {bundle.files} files ({size:.1f} MiB packed)")
            with uploading, bundle.path.open("rb") as body:
                client.call("PUT", path, content=body)
        console.print(
            f"Packed {bundle.files} files ({bundle.content_bytes / (1024 * 1024):.1f} MiB) "
            f"as bundle {bundle.digest[:12]}"
        )
        return bundle.digest
