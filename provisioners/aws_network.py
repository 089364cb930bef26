"""Per-launch EC2 security groups: one tagged group per replica that opens its service port
to `ingress_cidr` and its agent port to `controller_cidr` only (the agent's TLS port serves
the replica's logs and takes its secrets: nobody but the controller needs to reach it).

Invariants: the group's name is derived from the launch token, so a retried launch reuses
the group its first attempt made; every group carries the ownership tags plus its creation
time; a group is deleted with its instance, and `sweep` deletes groups whose instance is
gone but only once they are older than `SWEEP_MIN_AGE_S`, so a launch in flight (group made,
instance not yet requested) never loses its group. AWS refuses to delete a group while a
shutting-down instance still uses it (`DependencyViolation`); such a group is left for a
later sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from provisioners.aws_errors import error_code
from provisioners.base import TAG_CREATED_AT, TAG_LAUNCH_TOKEN, TAG_MANAGED_BY, LaunchRequest
from provisioners.errors import InvalidRequest

SERVICE_PORT_DESCRIPTION = "spotserve replica port"
AGENT_PORT_DESCRIPTION = "spotserve replica agent"

SWEEP_MIN_AGE_S = 600.0
_FILTER_VALUES = 100
LIVE_STATES = ("pending", "running", "shutting-down", "stopping", "stopped")
_GONE_OR_BUSY = {"InvalidGroup.NotFound", "DependencyViolation", "InvalidGroupId.NotFound"}


def aws_tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tag_map(raw: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in raw.get("Tags") or raw.get("TagSet") or []}


def default_vpc_id(ec2: Any, region: str) -> str:
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise InvalidRequest(
            f"region {region} has no default VPC, which spotserve launches into; create one "
            f"with `aws ec2 create-default-vpc --region {region}` or remove {region} from the "
            "allowed places",
            location=region,
        )
    return str(vpcs[0]["VpcId"])


@dataclass(frozen=True)
class Ingress:
    """Who may reach what: the service port from `cidr`, the agent port from
    `controller_cidr`."""

    cidr: str
    agent_port: int
    controller_cidr: str


def ensure_security_group(
    ec2: Any, request: LaunchRequest, name: str, ingress: Ingress, now: float
) -> str:
    """The id of this launch's group (made on first call), with the service port and the
    agent port open, each to its own CIDR."""
    region = request.location.region
    vpc_id = default_vpc_id(ec2, region)
    group_id = _find(ec2, name, vpc_id)
    if group_id is None:
        tags = {**request.ownership_tags(), "Name": name, TAG_CREATED_AT: f"{now:.0f}"}
        try:
            group_id = ec2.create_security_group(
                GroupName=name,
                Description=f"spotserve {request.service} replica {request.replica_id}",
                VpcId=vpc_id,
                TagSpecifications=[{"ResourceType": "security-group", "Tags": aws_tags(tags)}],
            )["GroupId"]
        except ClientError as exc:
            if error_code(exc) != "InvalidGroup.Duplicate":
                raise
            group_id = _find(ec2, name, vpc_id)
    _open_port(ec2, str(group_id), request.port, ingress.cidr, SERVICE_PORT_DESCRIPTION)
    _open_port(
        ec2, str(group_id), ingress.agent_port, ingress.controller_cidr, AGENT_PORT_DESCRIPTION
    )
    return str(group_id)


def delete_security_group(ec2: Any, group_id: str) -> bool:
    """Delete one group; False (not an error) if it is gone already or still in use."""
    try:
        ec2.delete_security_group(GroupId=group_id)
    except ClientError as exc:
        if error_code(exc) in _GONE_OR_BUSY:
            return False
        raise
    return True


def sweep(ec2: Any, now: float) -> list[str]:
    """Delete old owned groups whose launch has no live instance; returns the deleted ids."""
    groups = ec2.describe_security_groups(
        Filters=[{"Name": "tag-key", "Values": [TAG_MANAGED_BY]}]
    )["SecurityGroups"]
    old = [g for g in groups if now - _created_at(g) >= SWEEP_MIN_AGE_S]
    live = _live_tokens(ec2, {tag_map(g).get(TAG_LAUNCH_TOKEN, "") for g in old} - {""})
    return [
        str(g["GroupId"])
        for g in old
        if tag_map(g).get(TAG_LAUNCH_TOKEN) not in live and delete_security_group(ec2, g["GroupId"])
    ]


def _created_at(group: dict[str, Any]) -> float:
    text = tag_map(group).get(TAG_CREATED_AT, "")
    try:
        return float(text)
    except ValueError:
        return 0.0


def _live_tokens(ec2: Any, tokens: set[str]) -> set[str]:
    """Which of `tokens` still have an instance that has not finished terminating."""
    ordered = sorted(tokens)
    live: set[str] = set()
    for start in range(0, len(ordered), _FILTER_VALUES):
        chunk = ordered[start : start + _FILTER_VALUES]
        reply = ec2.describe_instances(
            Filters=[
                {"Name": f"tag:{TAG_LAUNCH_TOKEN}", "Values": chunk},
                {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
            ]
        )
        live |= {
            tag_map(i).get(TAG_LAUNCH_TOKEN, "")
            for r in reply["Reservations"]
            for i in r["Instances"]
        }
    return live


def _find(ec2: Any, name: str, vpc_id: str) -> str | None:
    groups = ec2.describe_security_groups(
        Filters=[
            {"Name": "group-name", "Values": [name]},
            {"Name": "vpc-id", "Values": [vpc_id]},
        ]
    )["SecurityGroups"]
    return str(groups[0]["GroupId"]) if groups else None


def _open_port(ec2: Any, group_id: str, port: int, cidr: str, description: str) -> None:
    try:
        ec2.authorize_security_group_ingress(
            GroupId=group_id,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": port,
                    "ToPort": port,
                    "IpRanges": [{"CidrIp": cidr, "Description": description}],
                }
            ],
        )
    except ClientError as exc:
        if error_code(exc) != "InvalidPermission.Duplicate":
            raise
