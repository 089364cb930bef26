"""An HTTP proxy in front of moto that answers chosen AWS calls with AWS's real error bodies.

moto cannot be told "us-east-1a is out of p3 capacity", so this proxy sits between boto3
and moto: it records every call it sees (service, action, parameters, the SDK's User-Agent)
and, when a refusal rule matches (service, action, availability zone; optionally only the
first N matching calls), answers with the status code and XML/JSON body AWS itself sends for
that error; everything else is forwarded to moto untouched.

Two behaviours of real AWS that moto lacks are programmed here too:
- eventual consistency: right after RunInstances, EC2 may answer
  `InvalidInstanceID.NotFound` for an instance that exists ("Eventual consistency" in the
  EC2 developer guide; the body is the example in "Error codes for the Amazon EC2 API"):
  `refuse("InvalidInstanceID.NotFound", action="DescribeInstances", times=N)`; and
  `hide_new_instances(times=N)` makes the next N DescribeInstances calls not see them at
  all: by id they answer NotFound, by filter an empty reservation set (the guide: "the
  results of an action that you run might not be visible to all subsequent commands");
- SSM public parameters under `/aws/service/...`, which moto refuses to create:
  `answer_parameter(name, value)` answers GetParameter for that name as SSM does.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.json_http import LoopbackServer

# (HTTP status, message) as EC2 sends them; messages follow AWS's wording.
EC2_ERRORS: dict[str, tuple[int, str]] = {
    "InsufficientInstanceCapacity": (
        500,
        "We currently do not have sufficient {type} capacity in the Availability Zone you "
        "requested ({zone}). Our system will be working on provisioning additional capacity. "
        "You can currently get {type} capacity by not specifying an Availability Zone in your "
        "request or choosing another zone.",
    ),
    "InsufficientReservedInstanceCapacity": (
        500,
        "Not enough available Reserved Instances to satisfy your minimum request.",
    ),
    "InsufficientReservedInstancesCapacity": (
        400,
        "There is insufficient capacity for the requested Reserved Instances.",
    ),
    "InstanceLimitExceeded": (
        400,
        "Your quota allows for 0 more running instance(s). You requested at least 1",
    ),
    "VcpuLimitExceeded": (
        400,
        "You have requested more vCPU capacity than your current vCPU limit of 0 allows for "
        "the instance bucket that the specified instance type belongs to. Please visit "
        "http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.",
    ),
    "MaxSpotInstanceCountExceeded": (400, "Max spot instance count exceeded"),
    "SpotMaxPriceTooLow": (
        400,
        "Your Spot request price of 0.1 is lower than the minimum required Spot request "
        "fulfillment price of 0.3066.",
    ),
    "Unsupported": (
        400,
        "Your requested instance type ({type}) is not supported in your requested "
        "Availability Zone ({zone}). Please retry your request by not specifying an "
        "Availability Zone or choosing another zone.",
    ),
    "AuthFailure": (401, "AWS was not able to validate the provided access credentials"),
    "UnauthorizedOperation": (
        403,
        "You are not authorized to perform this operation. User: "
        "arn:aws:iam::123456789012:user/ci is not authorized to perform: ec2:RunInstances "
        "because no identity-based policy allows the ec2:RunInstances action. Encoded "
        "authorization failure message: x9Vd0",
    ),
    "InvalidParameterValue": (400, "Invalid value '{type}' for InstanceType."),
    "InvalidAMIID.NotFound": (400, "The image id '[ami-00000000]' does not exist"),
    "RequestLimitExceeded": (503, "Request limit exceeded."),
    "InvalidInstanceID.NotFound": (400, "The instance ID '{instance}' does not exist"),
    "InternalError": (500, "An internal error has occurred."),
    "OptInRequired": (
        401,
        "You are not subscribed to this service. Please go to http://aws.amazon.com to subscribe.",
    ),
}


@dataclass(frozen=True)
class Call:
    service: str
    action: str
    params: dict[str, Any]
    user_agent: str = ""


@dataclass
class Refusal:
    service: str
    action: str | None
    zone: str | None
    code: str
    times: int | None = None
    """Refuse only this many matching calls (None: every one)."""

    def matches(self, call: Call) -> bool:
        return (
            self.service == call.service
            and self.action in (None, call.action)
            and self.zone in (None, call.params.get("Placement.AvailabilityZone"))
        )


class AWSErrorProxy:
    """A threaded HTTP server on 127.0.0.1 forwarding to `upstream` unless told to refuse."""

    def __init__(self, upstream: str):
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.calls: list[Call] = []
        self._refusals: list[Refusal] = []
        self._parameters: dict[str, str] = {}
        self._reject_credentials = False
        self._hidden_describes = 0
        self._lock = threading.Lock()
        self._http = LoopbackServer(_handler_for(self))

    @property
    def url(self) -> str:
        return self._http.url

    def start(self) -> AWSErrorProxy:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def refuse(
        self,
        code: str,
        *,
        zone: str | None = None,
        action: str | None = "RunInstances",
        service: str = "ec2",
        times: int | None = None,
    ) -> None:
        with self._lock:
            self._refusals.append(Refusal(service, action, zone, code, times))

    def hide_new_instances(self, times: int) -> None:
        """The next `times` DescribeInstances calls do not see the instances moto has."""
        with self._lock:
            self._hidden_describes = times

    def answer_parameter(self, name: str, value: str) -> None:
        """SSM GetParameter for `name` answers `value` (moto refuses `/aws/` names)."""
        with self._lock:
            self._parameters[name] = value

    def reject_credentials(self) -> None:
        self._reject_credentials = True

    def clear(self) -> None:
        with self._lock:
            self._refusals.clear()
            self._parameters.clear()
            self.calls.clear()
            self._reject_credentials = False
            self._hidden_describes = 0

    def received(self, action: str) -> list[dict[str, Any]]:
        with self._lock:
            return [c.params for c in self.calls if c.action == action]

    def received_calls(self, action: str | None = None) -> list[Call]:
        """Every call seen (of `action`, if given), in order."""
        with self._lock:
            return [c for c in self.calls if action in (None, c.action)]

    def answer(self, call: Call) -> tuple[int, dict[str, str], bytes] | None:
        """The answer to send for `call` instead of moto's, or None to forward it."""
        with self._lock:
            self.calls.append(call)
            if self._reject_credentials:
                return _credentials_error(call.service)
            refusal = next((r for r in self._refusals if r.matches(call)), None)
            if refusal is not None and refusal.times is not None:
                refusal.times -= 1
                if refusal.times <= 0:
                    self._refusals.remove(refusal)
            parameter = self._parameters.get(str(call.params.get("Name", "")))
            hidden = call.action == "DescribeInstances" and self._hidden_describes > 0
            if hidden:
                self._hidden_describes -= 1
        if hidden and refusal is None:
            if "InstanceId.1" in call.params:
                return _ec2_error("InvalidInstanceID.NotFound", call.params)
            return _no_reservations()
        if refusal is not None:
            return _ec2_error(refusal.code, call.params)
        if call.action == "GetParameter" and parameter is not None:
            return _ssm_parameter(str(call.params["Name"]), parameter)
        return None


def _handler_for(proxy: AWSErrorProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self._serve()

        def do_GET(self) -> None:
            self._serve()

        # S3's REST calls (its objects and buckets) pass through untouched.
        def do_PUT(self) -> None:
            self._serve()

        def do_HEAD(self) -> None:
            self._serve()

        def do_DELETE(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            refused = proxy.answer(_call(dict(self.headers), body))
            status, headers, payload = refused or self._forward(body)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if self.command != "HEAD":  # a HEAD keeps the length of what a GET would send
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
            conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
            try:
                conn.request(self.command, self.path, body=body, headers=dict(self.headers))
                reply = conn.getresponse()
                payload = reply.read()
                skip = {"transfer-encoding", "connection"}
                if self.command != "HEAD":
                    skip.add("content-length")
                headers = {k: v for k, v in reply.getheaders() if k.lower() not in skip}
                return reply.status, headers, payload
            finally:
                conn.close()

    return Handler


def _call(headers: dict[str, str], body: bytes) -> Call:
    """Which service and action a SigV4-signed request is, and its parameters."""
    auth = headers.get("Authorization", "")
    credential = auth.split("Credential=", 1)[1].split(",", 1)[0] if "Credential=" in auth else ""
    scope = credential.split("/")
    service = scope[3] if len(scope) > 3 else ""
    agent = headers.get("User-Agent", "")
    target = headers.get("X-Amz-Target", "")
    if target:
        return Call(service, target.rsplit(".", 1)[-1], json.loads(body or b"{}"), agent)
    try:
        text = body.decode()
    except UnicodeDecodeError:  # an S3 object's bytes, not a query-API form
        text = ""
    params = dict(urllib.parse.parse_qsl(text, keep_blank_values=True))
    return Call(service, params.get("Action", ""), params, agent)


def _ec2_error(code: str, params: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    status, template = EC2_ERRORS[code]
    message = template.format(
        type=params.get("InstanceType", ""),
        zone=params.get("Placement.AvailabilityZone", ""),
        instance=params.get("InstanceId.1") or params.get("ResourceId.1") or "",
    )
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error>"
        f"</Errors><RequestID>{uuid.uuid4()}</RequestID></Response>"
    )
    return status, {"Content-Type": "text/xml;charset=UTF-8"}, body.encode()


def _no_reservations() -> tuple[int, dict[str, str], bytes]:
    """DescribeInstances answering that nothing matched (its response syntax, empty)."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
        f"<requestId>{uuid.uuid4()}</requestId><reservationSet/></DescribeInstancesResponse>"
    )
    return 200, {"Content-Type": "text/xml;charset=UTF-8"}, body.encode()


def _ssm_parameter(name: str, value: str) -> tuple[int, dict[str, str], bytes]:
    """GetParameter's answer (SSM API reference, GetParameter: Response Syntax)."""
    payload = {
        "Parameter": {
            "Name": name,
            "Type": "String",
            "Value": value,
            "Version": 1,
            "DataType": "aws:ec2:image",
            "ARN": f"arn:aws:ssm:us-east-1::parameter{name}",
        }
    }
    return 200, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(payload).encode()


def _credentials_error(service: str) -> tuple[int, dict[str, str], bytes]:
    """What each protocol family answers to a key AWS does not know."""
    if service == "sts":
        body = (
            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
            "<Type>Sender</Type><Code>InvalidClientTokenId</Code>"
            "<Message>The security token included in the request is invalid.</Message>"
            f"</Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        )
        return 403, {"Content-Type": "text/xml"}, body.encode()
    if service == "ec2":
        return _ec2_error("AuthFailure", {})
    payload = {
        "__type": "UnrecognizedClientException",
        "message": "The security token included in the request is invalid.",
    }
    return 400, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(payload).encode()
