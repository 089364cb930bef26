"""AWS EC2 replicas through boto3: spot or on-demand, one per `run_instances` call.

Endpoints are boto3's business: the adapter never names one, so `AWS_ENDPOINT_URL` (or a
profile's `endpoint_url`) pointed at moto runs the whole product against it. Each launch
gets its own tagged security group opening the service port (to `SERVE_INGRESS_CIDR`) and
the agent port (to `SERVE_CONTROLLER_CIDR` only), user data from `build_boot_script` (the
replica agent, with a presigned S3 URL of the version's bundle), and the ownership tags (plus
the service and agent ports) on the instance, its volumes and its network interface.
`ClientToken` is derived from the launch token and the zone, so repeating one launch is
idempotent and failing over to another zone is a new request.

Call volume: a per-tick `list_owned(service, regions)` is one DescribeInstances per region
asked for (per page); only a full scan (`list_owned()`) searches every region and sweeps
security groups. Every client but the RunInstances one uses botocore's `adaptive` retry mode,
which backs off and rate-limits on the client side after EC2 answers RequestLimitExceeded.

Bundles: `launch` stages the request's bundle in the installation's S3 bucket
(`s3_store.S3BundleStore`, built on first use from the same boto3 session, so the same
endpoint and credentials as EC2) before it creates anything, so a store that refuses leaves
nothing behind; `release` empties the service's prefix at `serve down`; `sign_source` signs
`s3://` bucket mounts for the agent.

Constructors do no I/O: boto3 sessions and clients are made on first use. Environment:
`SERVE_AWS_REGIONS` (comma list searched by a full `list_owned`; default: the catalog's AWS
regions), `SERVE_AWS_IMAGE_ID` (AMI for every launch), `SERVE_AWS_IMAGE_PARAMETER` (SSM
public parameter naming the AMI for every launch; default: by instance family, see
`default_image_parameter`), `SERVE_INGRESS_CIDR` (who may reach the service port, see
`provisioners.base.ingress_cidr`), `SERVE_CONTROLLER_CIDR` (who may reach the agent port,
see `provisioners.base.controller_cidr`), `SERVE_AWS_BUNDLE_REGION` (where the bundle
bucket is made, see `s3_store`), `SERVE_AWS_KEY_NAME` (an EC2 key pair for SSH).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, NoCredentialsError

from policies.types import Location, Offer
from provisioners.aws_errors import AWS_ERRORS, CREDENTIALS_HINT, aws_calls, classify, error_code
from provisioners.aws_images import default_image_parameter
from provisioners.aws_instances import finished, to_instance
from provisioners.aws_network import (
    Ingress,
    aws_tags,
    delete_security_group,
    ensure_security_group,
    sweep,
)
from provisioners.base import (
    CONNECT_TIMEOUT_SECONDS,
    MANAGED_BY,
    READ_TIMEOUT_SECONDS,
    TAG_AGENT_PORT,
    TAG_MANAGED_BY,
    TAG_PORT,
    TAG_SERVICE,
    TAG_TERMINATED_BY,
    CheckResult,
    Instance,
    LaunchRequest,
    ResourceRequest,
)
from provisioners.base import agent_port as configured_agent_port
from provisioners.base import controller_cidr as configured_controller_cidr
from provisioners.base import ingress_cidr as configured_ingress_cidr
from provisioners.catalog import Catalog, default_catalog
from provisioners.errors import CredentialsError, InvalidRequest, ProvisionError
from provisioners.object_store import SignedObject, stage_bundle
from provisioners.replica_names import resource_name
from provisioners.s3_store import S3BundleStore
from provisioners.startup_script import build_boot_script

log = logging.getLogger(__name__)

USER_DATA_LIMIT = 16 * 1024
"""EC2 refuses user data over 16 KB (RunInstances, `UserData`: "User data is limited to 16
KB"), counted before base64."""
_NOT_FOUND = {"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"}
_ACCEPTED = {"shutting-down", "terminated"}
_RETRYING = Config(
    retries={"mode": "adaptive", "max_attempts": 3},
    connect_timeout=CONNECT_TIMEOUT_SECONDS,
    read_timeout=READ_TIMEOUT_SECONDS,
)
# RunInstances answers InsufficientInstanceCapacity with HTTP 500, which botocore would
# retry with backoff; capacity answers must reach the failover loop at once.
_ONE_SHOT = Config(
    retries={"total_max_attempts": 1},
    connect_timeout=CONNECT_TIMEOUT_SECONDS,
    read_timeout=READ_TIMEOUT_SECONDS,
)


class AWSProvisioner:
    """The `Provisioner` for EC2. Raises only `ProvisionError` subclasses."""

    cloud = "aws"

    def __init__(
        self,
        *,
        installation: str = "",
        catalog: Catalog | None = None,
        session: boto3.session.Session | None = None,
        regions: Iterable[str] | None = None,
        image_id: str | None = None,
        image_parameter: str | None = None,
        ingress_cidr: str | None = None,
        key_name: str | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.installation = installation
        env = os.environ
        self._catalog = catalog
        self._session = session
        self._regions = tuple(regions or _split(env.get("SERVE_AWS_REGIONS", "")))
        self._image_id = image_id or env.get("SERVE_AWS_IMAGE_ID") or None
        self._image_parameter = image_parameter or env.get("SERVE_AWS_IMAGE_PARAMETER") or None
        self._cidr = ingress_cidr or configured_ingress_cidr(env)
        self._agent_port = configured_agent_port(env)
        self._controller_cidr = configured_controller_cidr(env)
        self._key_name = key_name or env.get("SERVE_AWS_KEY_NAME") or None
        self._clock = clock
        self._clients: dict[tuple[str, str, bool], Any] = {}
        self._images: dict[tuple[str, str], str] = {}
        self._store: S3BundleStore | None = None
        self._lock = threading.Lock()

    @property
    def catalog(self) -> Catalog:
        return self._catalog or default_catalog()

    def check(self) -> CheckResult:
        region = _home_region()
        try:
            identity = self._client("sts", region).get_caller_identity()
            self._client("ec2", region).describe_availability_zones()
        except NoCredentialsError:
            return CheckResult(self.cloud, False, "no AWS credentials found", CREDENTIALS_HINT)
        except AWS_ERRORS as exc:
            err = classify(exc, region)
            if isinstance(err, CredentialsError):
                return CheckResult(
                    self.cloud, False, f"AWS refused the credentials: {err.message}", err.message
                )
            return CheckResult(
                self.cloud,
                False,
                f"AWS did not answer usefully: {err}",
                "check network access to AWS, or AWS_ENDPOINT_URL if you point at a stand-in",
            )
        return CheckResult(
            self.cloud, True, f"credentials for {identity['Arn']} (account {identity['Account']})"
        )

    def offers(self, resources: ResourceRequest) -> list[Offer]:
        return self.catalog.offers(self.cloud, resources)

    def launch(self, request: LaunchRequest) -> Instance:
        where = request.location
        _require_aws(where, request)
        agent_port = self._agent_port
        script = self._boot_script(request, agent_port)
        ec2 = self._client("ec2", where.region)
        name = f"spotserve-{resource_name(request)}"
        ingress = Ingress(self._cidr, agent_port, self._controller_cidr)
        with aws_calls(where.key):
            image = self._image(request)
            group_id = ensure_security_group(ec2, request, name, ingress, self._clock())
            params = self._run_params(request, image, group_id, script, name, agent_port)
        try:
            with aws_calls(where.key):
                reply = self._client("ec2", where.region, one_shot=True).run_instances(**params)
        except ProvisionError:
            self._quietly_delete_group(ec2, group_id)
            raise
        launched = to_instance(reply["Instances"][0], where.region)
        return dataclasses.replace(
            launched,
            service=request.service,
            replica_id=request.replica_id,
            launch_token=request.launch_token,
            port=request.port,
            controller_id=request.controller_id,
            agent_port=agent_port,
        )

    def get(self, instance_id: str, location: Location) -> Instance | None:
        raw = self._describe(instance_id, location)
        return to_instance(raw, location.region) if raw else None

    def terminate(self, instance_id: str, location: Location) -> bool:
        """Marks the instance as ours to end, then calls TerminateInstances by id, whatever
        DescribeInstances says: right after RunInstances EC2 may answer
        InvalidInstanceID.NotFound for an instance that exists (eventual consistency).

        True once EC2 has accepted the termination (shutting-down or terminated) and the
        instance carries the mark (or had ended before); False if EC2 does not know the id
        yet (the replica manager asks again, and decides after `VISIBILITY_GRACE_SECONDS`).
        The security group is deleted here when EC2 already allows it, else by a later
        full-scan sweep (EC2 refuses while the instance is shutting down).
        """
        ec2 = self._client("ec2", location.region)
        marked = self._mark_terminated_by_us(ec2, instance_id, location)
        with aws_calls(location.key):
            try:
                reply = ec2.terminate_instances(InstanceIds=[instance_id])
            except ClientError as exc:
                if error_code(exc) in _NOT_FOUND:
                    return False
                raise
        changes = reply.get("TerminatingInstances") or [{}]
        now = {str(c.get("CurrentState", {}).get("Name", "")) for c in changes}
        before = {str(c.get("PreviousState", {}).get("Name", "")) for c in changes}
        if not now <= _ACCEPTED:
            return False
        self._delete_groups_of(ec2, instance_id, location)
        # An instance that had ended before this call keeps its own state reason (a
        # preemption, say); one this call ended must carry the mark first.
        return marked or before <= _ACCEPTED

    def release(self, service: str) -> bool:
        """Empty the service's prefix of the bundle bucket (True also when there is no
        bucket); the bucket stays for the installation."""
        return self.bundle_store().delete_service(service)

    def sign_source(self, source: str, seconds: int) -> list[SignedObject] | None:
        """Presigned GETs for an `s3://` bucket mount, so the replica needs no AWS identity
        of its own; None for other schemes or a bucket this identity may not read."""
        return self.bundle_store().sign_source(source, seconds)

    def bundle_store(self) -> S3BundleStore:
        """The installation's S3 bundle store, made on first use (no I/O until called)."""
        with self._lock:
            if self._store is None:
                self._store = S3BundleStore(self.installation, session=self._boto_session())
            return self._store

    def _boot_script(self, request: LaunchRequest, agent_port: int) -> str:
        """The user data: the agent with the bundle's presigned URL. The bundle is staged
        first, before anything is created, so a store error leaves nothing behind."""
        try:
            bundle_url = stage_bundle(self.bundle_store(), request)
        except ProvisionError as exc:
            raise type(exc)(
                f"cannot stage the bundle in S3: {exc.message}",
                location=exc.location or request.location.key,
                code=exc.code,
            ) from exc
        script = build_boot_script(
            request, bundle_url=bundle_url, cloud=self.cloud, agent_port=agent_port
        )
        size = len(script.encode())
        if size > USER_DATA_LIMIT:
            raise InvalidRequest(
                f"the boot script is {size} bytes but EC2 user data is limited to "
                f"{USER_DATA_LIMIT}; its presigned bundle URL takes {len(bundle_url or '')} "
                "(temporary credentials add their session token to it)",
                location=request.location.key,
            )
        return script

    def list_owned(
        self, service: str | None = None, regions: Collection[str] | None = None
    ) -> list[Instance]:
        """Owned instances in `regions` (default: every searched region) that spotserve has
        not finished with (see `aws_instances.finished`): preempted, refused and lost ones
        stay listed while EC2 still describes them (about an hour) until spotserve
        terminates them. Only a full scan (no service, no regions) also sweeps security
        groups whose instances have finished terminating (see `sweep`).
        """
        filters = [{"Name": f"tag:{TAG_MANAGED_BY}", "Values": [MANAGED_BY]}]
        if service is not None:
            filters.append({"Name": f"tag:{TAG_SERVICE}", "Values": [service]})
        full_scan = service is None and regions is None
        searched = tuple(regions) if regions is not None else self._searched_regions()
        if not searched:
            return []
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(searched)))) as pool:
            batches = list(pool.map(lambda r: self._owned_in(r, filters, full_scan), searched))
        return [i for batch in batches for i in batch]

    def _searched_regions(self) -> tuple[str, ...]:
        return self._regions or tuple(self.catalog.regions(self.cloud))

    def _owned_in(
        self, region: str, filters: list[dict[str, Any]], sweep_groups: bool
    ) -> list[Instance]:
        ec2 = self._client("ec2", region)
        with aws_calls(region):
            try:
                pages = ec2.get_paginator("describe_instances").paginate(Filters=filters)
                raw = [i for page in pages for r in page["Reservations"] for i in r["Instances"]]
            except ClientError as exc:
                if error_code(exc) == "OptInRequired":
                    return []
                raise
        if sweep_groups:
            try:
                sweep(ec2, self._clock())
            except AWS_ERRORS as exc:
                log.warning("could not sweep security groups in %s: %s", region, classify(exc))
        return [to_instance(i, region) for i in raw if not finished(i)]

    def _mark_terminated_by_us(self, ec2: Any, instance_id: str, location: Location) -> bool:
        """Tag the instance so that its end reads TERMINATED, not LOST (see aws_instances).
        False if EC2 cannot tag it (yet): the caller still terminates, and asks again."""
        with aws_calls(location.key):
            try:
                ec2.create_tags(
                    Resources=[instance_id], Tags=aws_tags({TAG_TERMINATED_BY: MANAGED_BY})
                )
            except ClientError as exc:
                if error_code(exc) in _NOT_FOUND or error_code(exc) == "IncorrectInstanceState":
                    return False
                raise
        return True

    def _delete_groups_of(self, ec2: Any, instance_id: str, location: Location) -> None:
        raw = self._describe(instance_id, location)
        for group in (raw or {}).get("SecurityGroups", []):
            if str(group.get("GroupName", "")).startswith("spotserve-"):
                self._quietly_delete_group(ec2, group["GroupId"])

    def _describe(self, instance_id: str, location: Location) -> dict[str, Any] | None:
        ec2 = self._client("ec2", location.region)
        with aws_calls(location.key):
            try:
                reply = ec2.describe_instances(InstanceIds=[instance_id])
            except ClientError as exc:
                if error_code(exc) in _NOT_FOUND:
                    return None
                raise
        found = [i for r in reply["Reservations"] for i in r["Instances"]]
        return found[0] if found else None

    def _run_params(
        self,
        request: LaunchRequest,
        image: str,
        group_id: str,
        script: str,
        name: str,
        agent_port: int,
    ) -> dict[str, Any]:
        ports = {TAG_PORT: str(request.port), TAG_AGENT_PORT: str(agent_port)}
        tags = aws_tags({**request.ownership_tags(), "Name": name, **ports})
        params: dict[str, Any] = {
            "ImageId": image,
            "InstanceType": request.offer.instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "Placement": {"AvailabilityZone": request.location.zone},
            "SecurityGroupIds": [group_id],
            "UserData": script,
            "ClientToken": _client_token(request),
            "InstanceInitiatedShutdownBehavior": "terminate",
            "TagSpecifications": [
                {"ResourceType": kind, "Tags": tags}
                for kind in ("instance", "volume", "network-interface")
            ],
        }
        if request.spot:
            params["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {
                    "SpotInstanceType": "one-time",
                    "InstanceInterruptionBehavior": "terminate",
                },
            }
        if request.resources.disk_size:
            params["BlockDeviceMappings"] = [self._root_disk(request, image)]
        if self._key_name:
            params["KeyName"] = self._key_name
        return params

    def _root_disk(self, request: LaunchRequest, image: str) -> dict[str, Any]:
        ec2 = self._client("ec2", request.location.region)
        images = ec2.describe_images(ImageIds=[image])["Images"]
        if not images:
            raise InvalidRequest(
                f"AMI {image} does not exist in {request.location.region}; set "
                "resources.image_id to an AMI of that region",
                location=request.location.key,
            )
        return {
            "DeviceName": images[0].get("RootDeviceName") or "/dev/sda1",
            "Ebs": {
                "VolumeSize": int(request.resources.disk_size or 0),
                "VolumeType": "gp3",
                "DeleteOnTermination": True,
            },
        }

    def _image(self, request: LaunchRequest) -> str:
        chosen = request.resources.image_id or self._image_id
        if chosen:
            if not chosen.startswith("ami-"):
                raise InvalidRequest(
                    f"image_id {chosen!r} is not an AMI id; on AWS it must look like ami-0abc...",
                    location=request.location.key,
                )
            return chosen
        instance_type = request.offer.instance_type
        spec = self.catalog.instance_spec(self.cloud, instance_type)
        gpu = spec is None or bool(spec.accelerator)
        parameter = self._image_parameter or default_image_parameter(instance_type, gpu)
        return self._resolve_parameter(parameter, request.location)

    def _resolve_parameter(self, parameter: str, location: Location) -> str:
        key = (location.region, parameter)
        if key not in self._images:
            ssm = self._client("ssm", location.region)
            try:
                value = ssm.get_parameter(Name=parameter)["Parameter"]["Value"]
            except ClientError as exc:
                if error_code(exc) != "ParameterNotFound":
                    raise
                raise InvalidRequest(
                    f"SSM parameter {parameter} (the default image) does not exist in "
                    f"{location.region}; set resources.image_id or SERVE_AWS_IMAGE_ID to an AMI",
                    location=location.key,
                    code="ParameterNotFound",
                ) from exc
            self._images[key] = str(value)
        return self._images[key]

    def _quietly_delete_group(self, ec2: Any, group_id: str) -> None:
        try:
            delete_security_group(ec2, group_id)
        except AWS_ERRORS as exc:
            log.warning("could not delete security group %s: %s", group_id, classify(exc))

    def _client(self, service: str, region: str, *, one_shot: bool = False) -> Any:
        key = (service, region, one_shot)
        with self._lock:
            if key not in self._clients:
                config = _ONE_SHOT if one_shot else _RETRYING
                self._clients[key] = self._boto_session().client(
                    service, region_name=region, config=config
                )
            return self._clients[key]

    def _boto_session(self) -> boto3.session.Session:
        """The one boto3 session EC2, SSM, STS and S3 share (same endpoint, same keys);
        called with `_lock` held."""
        if self._session is None:
            self._session = boto3.session.Session()
        return self._session


def _client_token(request: LaunchRequest) -> str:
    """Same launch in the same zone and market: same token; EC2 allows at most 64 chars."""
    seed = f"{request.launch_token}/{request.location.zone}/{request.spot}"
    return hashlib.sha256(seed.encode()).hexdigest()[:64]


def _require_aws(where: Location, request: LaunchRequest) -> None:
    if where.cloud != "aws":
        raise InvalidRequest(f"AWSProvisioner cannot launch in {where}", location=where.key)
    if not request.offer.instance_type:
        raise InvalidRequest("the offer names no instance type", location=where.key)


def _home_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]
