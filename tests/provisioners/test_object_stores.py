"""The object store contract, run on each cloud's real emulator with the cloud's real SDK.

Every signed URL is fetched with plain urllib and no credentials, as the replica agent does.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from provisioners.base import Bundle
from provisioners.errors import InvalidRequest, TransientError
from provisioners.object_store import bucket_name
from tests.provisioners.object_store_kits import Kit, new_installation_id
from tests.support.processes import free_port, wait_until


def make_bundle(tmp_path: Path, size: int = 300_000, name: str = "bundle") -> Bundle:
    data = os.urandom(size)
    path = tmp_path / f"{name}.tar.gz"
    path.write_bytes(data)
    return Bundle(digest=hashlib.sha256(data).hexdigest(), path=path, size=size)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return bytes(answer.read())


def refused(url: str) -> int | None:
    """The HTTP status with which a GET of `url` is refused; None if it is served."""
    try:
        fetch(url)
    except urllib.error.HTTPError as exc:
        return exc.code
    return None


def test_bucket_is_created_tagged_with_the_installation(kit: Kit) -> None:
    installation = new_installation_id()

    name = kit.store(installation).ensure_bucket()

    assert name == bucket_name(installation) == f"spotserve-{installation}"
    assert kit.ownership(name) == ("spotserve", installation)


def test_bucket_is_private(kit: Kit) -> None:
    name = kit.store(new_installation_id()).ensure_bucket()

    assert kit.private(name)


def test_an_object_cannot_be_fetched_without_a_signature(kit: Kit, tmp_path: Path) -> None:
    if not kit.refuses_unsigned:
        pytest.skip(f"the {kit.cloud} emulator serves any object to anyone")
    store = kit.store(new_installation_id())
    key = store.put_bundle("web", make_bundle(tmp_path))

    assert refused(kit.unsigned_url(store.ensure_bucket(), key)) == 403


def test_ensure_bucket_twice_keeps_the_one_bucket(kit: Kit) -> None:
    installation = new_installation_id()
    first = kit.store(installation).ensure_bucket()

    again = kit.store(installation).ensure_bucket()  # a new store: a restarted controller

    assert again == first
    assert kit.ownership(again) == ("spotserve", installation)


def test_put_bundle_stores_it_under_the_service_and_digest(kit: Kit, tmp_path: Path) -> None:
    store = kit.store(new_installation_id())
    bundle = make_bundle(tmp_path)

    key = store.put_bundle("web", bundle)

    assert key == f"bundles/web/{bundle.digest}.tar.gz"
    assert kit.keys(store.ensure_bucket(), "bundles/") == [key]


def test_second_put_of_the_same_bundle_uploads_nothing(kit: Kit, tmp_path: Path) -> None:
    installation = new_installation_id()
    store = kit.store(installation)
    bucket = store.ensure_bucket()
    kit.track_writes(bucket)
    bundle = make_bundle(tmp_path)
    key = store.put_bundle("web", bundle)
    before = kit.revision(bucket, key)

    assert kit.store(installation).put_bundle("web", bundle) == key

    assert kit.revision(bucket, key) == before


def test_signed_url_returns_exactly_the_bundle_without_credentials(
    kit: Kit, tmp_path: Path
) -> None:
    store = kit.store(new_installation_id())
    bundle = make_bundle(tmp_path, size=3 * 1024 * 1024 + 17)
    key = store.put_bundle("web", bundle)

    url = store.signed_url(key, 600)

    assert fetch(url) == bundle.path.read_bytes()


def test_signed_url_lives_as_long_as_asked(kit: Kit, tmp_path: Path) -> None:
    store = kit.store(new_installation_id())
    key = store.put_bundle("web", make_bundle(tmp_path))

    left = kit.seconds_left(store.signed_url(key, 900))

    assert 880 <= left <= 902


def test_a_signed_url_stops_working_when_it_expires(kit: Kit, tmp_path: Path) -> None:
    if not kit.refuses_expired:
        pytest.skip(f"the {kit.cloud} emulator does not check a signed URL's expiry")
    store = kit.store(new_installation_id())
    key = store.put_bundle("web", make_bundle(tmp_path))
    url = store.signed_url(key, 1)

    assert wait_until(lambda: refused(url) == 403, "the URL to expire", timeout=10)


@pytest.mark.parametrize("seconds", [0, -5, 7 * 24 * 3600 + 1])
def test_signed_url_refuses_a_life_no_cloud_signs(kit: Kit, seconds: int) -> None:
    store = kit.store(new_installation_id())

    with pytest.raises(InvalidRequest):
        store.signed_url("bundles/web/x.tar.gz", seconds)


def test_delete_service_removes_its_objects_and_keeps_the_others(kit: Kit, tmp_path: Path) -> None:
    store = kit.store(new_installation_id())
    bucket = store.ensure_bucket()
    store.put_bundle("web", make_bundle(tmp_path, name="a"))
    store.put_bundle("web", make_bundle(tmp_path, name="b"))
    kept = store.put_bundle("web2", make_bundle(tmp_path, name="c"))

    assert store.delete_service("web") is True

    assert kit.keys(bucket, "bundles/") == [kept]


def test_delete_service_again_is_done_at_once(kit: Kit, tmp_path: Path) -> None:
    store = kit.store(new_installation_id())
    store.put_bundle("web", make_bundle(tmp_path))
    store.delete_service("web")

    assert store.delete_service("web") is True


def test_delete_service_without_a_bucket_is_done(kit: Kit) -> None:
    assert kit.store(new_installation_id()).delete_service("web") is True


def test_sign_source_of_one_object_downloads_it(kit: Kit) -> None:
    bucket = kit.store(new_installation_id()).ensure_bucket()
    kit.write(bucket, "data/weights.bin", b"weights")

    signed = kit.store(new_installation_id()).sign_source(
        kit.source(bucket, "data/weights.bin"), 600
    )

    assert signed is not None and [s.path for s in signed] == [""]
    assert fetch(signed[0].url) == b"weights"


@pytest.mark.parametrize("path", ["data", "data/"])
def test_sign_source_of_a_prefix_downloads_every_object_under_it(kit: Kit, path: str) -> None:
    bucket = kit.store(new_installation_id()).ensure_bucket()
    files = {"a.txt": b"alpha", "sub/b.txt": b"beta", "sub/deeper/c.txt": b"gamma"}
    for name, data in files.items():
        kit.write(bucket, f"data/{name}", data)
    kit.write(bucket, "database.txt", b"not under data/")

    signed = kit.store(new_installation_id()).sign_source(kit.source(bucket, path), 600)

    assert signed is not None
    assert {s.path: fetch(s.url) for s in signed} == files


def test_sign_source_of_a_bucket_that_does_not_exist_says_so(kit: Kit) -> None:
    store = kit.store(new_installation_id())
    missing = bucket_name(new_installation_id())

    with pytest.raises(InvalidRequest, match=f"{missing} does not exist"):
        store.sign_source(kit.source(missing, "data/x.bin"), 600)


def test_sign_source_of_an_empty_path_says_so(kit: Kit) -> None:
    bucket = kit.store(new_installation_id()).ensure_bucket()

    with pytest.raises(InvalidRequest, match="no object at that path or under it"):
        kit.store(new_installation_id()).sign_source(kit.source(bucket, "nothing/here"), 600)


@pytest.mark.parametrize(
    "source",
    [
        "s3://bucket/key",
        "gs://bucket/key",
        "https://acct.blob.core.windows.net/container/key",
        "https://example.com/file.bin",
    ],
)
def test_sign_source_leaves_other_clouds_to_the_replica(kit: Kit, source: str) -> None:
    own = {"aws": "s3://", "gcp": "gs://"}.get(kit.cloud)
    if own and source.startswith(own):
        pytest.skip("this cloud's own scheme")

    assert kit.store(new_installation_id()).sign_source(source, 600) is None


def test_an_unreachable_endpoint_is_a_transient_error(kit: Kit) -> None:
    store = kit.store_at(f"http://127.0.0.1:{free_port()}", new_installation_id())

    with pytest.raises(TransientError):
        store.ensure_bucket()
