"""Tests that must not run at the same time as each other under pytest-xdist.

`make test` runs the suite on several workers with `--dist loadgroup`; tests marked with the
same group run on one worker, one after another.

VM_BOOT: the boot-mode cloud fakes (tests/fakes/gcp_boot.py, azure_boot.py) run each
instance's replica on the service's own port (8080) at a loopback address of its own, and
`python3 -m http.server 8080` binds 8080 on every address: two such tests at once on one
machine collide ("Address already in use") and their replicas fail.
"""

from __future__ import annotations

import pytest

VM_BOOT = pytest.mark.xdist_group("vm_boot")
