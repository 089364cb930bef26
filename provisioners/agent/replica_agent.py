#!/usr/bin/env python3
"""The spotserve replica agent: the one program besides the operator's commands that runs on
a cloud replica (docs/cloud-replicas.md, "The agent"). Standard library only, Python 3.8+:
it runs on whatever Python the VM image has.

    python3 replica_agent.py --config <agent dir>/config.json --log <replica log>

Phases: booting -> waiting_for_job -> mounting -> setup -> running -> exited, or failed
(with the reason in `detail`) from any of them. The bundle is fetched while the TLS port is
already up, so a failed boot can be read from GET /v1/status.

Invariants:
- HTTPS only, with a self-signed certificate made by `openssl`; without openssl there is no
  agent (envs and secrets travel on this port), never a plain-HTTP one.
- Every endpoint but POST /v1/hello needs the bearer token. Hello answers anyone with
  HMAC-SHA256(token, nonce || SHA-256(certificate DER)): it must not need the token, since a
  client that sent the token before checking the proof would hand it to whoever answered.
- No endpoint returns a secret and nothing logs one: envs and secrets reach only the 0600
  `job.env` and the environment of setup and run. One job; a second PUT /v1/job is 409.
- The replica log is this process's stdout and stderr (the boot script tees them into
  --log); the steps, bucket copies, setup and run write to the same stream, so
  GET /v1/logs serves one file. The agent's own lines start with `[spotserve]`; routine
  requests are not logged (the controller polls).

Environment: SERVE_REPLICA_HOST is the address to listen on (default 0.0.0.0; the cloud fakes'
boot mode gives each instance its own loopback address); SERVE_METADATA_URL replaces the
cloud's instance metadata address when watching for preemption notices (for fakes).
"""

from __future__ import annotations

import argparse
import datetime
import email.utils
import hashlib
import hmac
import http.client
import json
import os
import re
import shlex
import shutil
import ssl
import subprocess
import sys
import tarfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict

FETCH_SECONDS = 180.0
"""How long a download keeps retrying network errors, 5xx, 408 and 429."""
REQUEST_SECONDS = 30.0
JOB_BODY_LIMIT = 1 << 20
BODY_LIMIT = 64 << 10
LOG_READ_LIMIT = 4 << 20
NONCE_BYTES = 32
NOTICE_SECONDS = 2.0
NOTICE_LEAD = {"aws": 120.0, "gcp": 30.0, "azure": 30.0}
"""The lead each cloud documents, for a notice that does not say when."""
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
Json = Dict[str, Any]


def say(event: str, **fields: object) -> None:
    """One line on stderr: `[spotserve] <UTC time> <event> key=<JSON value> ...`."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    pairs = "".join(f" {k}={json.dumps(v)}" for k, v in fields.items())
    print(f"[spotserve] {stamp} {event}{pairs}", file=sys.stderr, flush=True)


def shown(url: str) -> str:
    """A URL without its query and credentials: a signed URL's signature is a secret."""
    scheme, _, rest = url.partition("://")
    host, _, path = rest.partition("/")
    return f"{scheme}://{host.rpartition('@')[2]}/{path.split('?')[0]}"


class Unreadable(Exception):
    """A source that cannot be read; the message is the reason."""


class Refusal(Exception):
    """A request the agent answers with `status` and `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class BootConfig:
    """What the boot script gives the agent; never envs, secrets, setup or run."""

    token: str
    bundle_url: str | None
    bundle_digest: str | None
    agent_port: int
    cloud: str
    service: str
    replica_id: int
    port: int
    workdir: str

    @staticmethod
    def load(path: str) -> BootConfig:
        with open(path) as fh:
            raw = json.load(fh)
        config = BootConfig(**raw)
        if not config.token or (config.bundle_url and not config.bundle_digest):
            raise ValueError("the config needs a token, and a digest with a bundle URL")
        return config


class Agent:
    """The phase and the job, shared by the HTTP threads and the worker under one lock."""

    def __init__(self, config: BootConfig, home: str, log_path: str, cert_sha256: bytes) -> None:
        self.config = config
        self.home = home
        self.log_path = log_path
        self.cert_sha256 = cert_sha256
        self.workdir = os.path.expanduser(config.workdir)
        self.lock = threading.Lock()
        self.phase, self.detail, self.since = "booting", "", time.time()
        self.exit_code: int | None = None
        self.job: Json | None = None
        self.job_arrived = threading.Event()
        self.notice: Json | None = None

    def enter(self, phase: str, detail: str = "", exit_code: int | None = None) -> None:
        with self.lock:
            if self.phase == "failed":
                return
            self.phase, self.detail, self.exit_code = phase, detail, exit_code
            self.since = time.time()
        say("phase", phase=phase, detail=detail, exit_code=exit_code)

    def status(self) -> Json:
        with self.lock:
            return {
                "phase": self.phase,
                "detail": self.detail,
                "exit_code": self.exit_code,
                "since": self.since,
                "notice": self.notice,
            }

    def accept(self, job: Json) -> str:
        with self.lock:
            if self.job is not None:
                raise Refusal(409, "this agent already accepted a job")
            if self.phase == "failed":
                raise Refusal(409, f"this agent failed: {self.detail}")
            self.job = job
            phase = self.phase
        self.job_arrived.set()
        return phase


# Fetching and unpacking.


def fetch(url: str, dest: str) -> str:
    """Download `url` to `dest` and return its SHA-256. Network errors, 5xx, 408 and 429 are
    retried with backoff for FETCH_SECONDS; other answers, TLS and file:// errors are final."""
    deadline, pause = time.monotonic() + FETCH_SECONDS, 1.0
    while True:
        try:
            return download(url, dest)
        except urllib.error.HTTPError as exc:
            reason, transient = f"HTTP {exc.code} {exc.reason}", exc.code in (408, 429)
            transient = transient or exc.code >= 500
        except (OSError, http.client.HTTPException) as exc:
            cause = getattr(exc, "reason", exc)
            reason = str(cause)
            transient = not url.startswith("file:") and not isinstance(cause, ssl.SSLError)
        if not transient or time.monotonic() + pause > deadline:
            raise Unreadable(reason)
        say("retry", url=shown(url), reason=reason, seconds=pause)
        time.sleep(pause)
        pause = min(pause * 2, 30.0)


def download(url: str, dest: str) -> str:
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=REQUEST_SECONDS) as reply, open(dest, "wb") as out:
        for block in iter(lambda: reply.read(1 << 20), b""):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def safe_join(root: str, relative: str) -> str:
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if relative.startswith("/") or ".." in parts:
        raise ValueError(f"unsafe path {relative!r}")
    return os.path.join(root, *parts)


def unpack(bundle: str, workdir: str) -> None:
    """Unpack per manifest.json: `workdir/` into `workdir`, `mounts/<i>` onto mount i's
    target. Refuses (ValueError) absolute names, `..`, anything written through or linking
    outside its root, and entries that are not files, directories or links."""
    with tarfile.open(bundle, "r:gz") as tar:
        manifest_file = tar.extractfile("manifest.json")  # KeyError if there is none
        manifest = json.load(manifest_file) if manifest_file else None
        if not isinstance(manifest, dict) or manifest.get("format") != 1:
            raise ValueError("manifest.json is not format 1")
        roots = {"workdir": workdir} if manifest.get("workdir") else {}
        for mount in manifest.get("mounts", []):
            target = os.path.expanduser(str(mount["target"]))
            if not os.path.isabs(target):
                raise ValueError(f"mount target {target!r} is not an absolute path")
            roots[f"mounts/{int(mount['index'])}"] = target
            if mount.get("kind") == "dir":
                os.makedirs(target, exist_ok=True)
        for member in tar.getmembers():
            if member.name != "manifest.json":
                place(tar, member, roots)


def place(tar: tarfile.TarFile, member: tarfile.TarInfo, roots: dict[str, str]) -> None:
    parts = [p for p in member.name.split("/") if p not in ("", ".")]
    if member.name.startswith("/") or ".." in parts or not parts:
        raise ValueError(f"unsafe path {member.name!r}")
    depth = 1 if parts[0] == "workdir" else 2
    root = roots.get("/".join(parts[:depth]))
    if root is None:
        raise ValueError(f"unexpected entry {member.name!r}")
    dest = os.path.join(root, *parts[depth:])
    real_root = os.path.realpath(root)
    if dest != root and not inside(os.path.realpath(os.path.dirname(dest)), real_root):
        raise ValueError(f"{member.name!r} would be written through a link outside")
    if member.isdir():
        os.makedirs(dest, exist_ok=True)
        return
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if os.path.islink(dest) or os.path.isfile(dest):
        os.unlink(dest)  # replace it, never write through it
    if member.issym():
        pointed = os.path.realpath(os.path.join(os.path.dirname(dest), member.linkname))
        if os.path.isabs(member.linkname) or not inside(pointed, real_root):
            raise ValueError(f"link {member.name!r} points outside ({member.linkname!r})")
        os.symlink(member.linkname, dest)
    elif member.isfile() or member.islnk():
        source = tar.extractfile(member)
        assert source is not None
        with source, open(dest, "wb") as out:
            shutil.copyfileobj(source, out)
        os.chmod(dest, member.mode & 0o777)
    else:
        raise ValueError(f"{member.name!r} is a device, fifo or other special file")


def boot(agent: Agent) -> bool:
    """Workdir, then the bundle if any; False (phase failed) if it cannot be had."""
    config = agent.config
    os.makedirs(agent.workdir, exist_ok=True)
    if not config.bundle_url:
        say("unpack", skipped="no bundle")
        return True
    bundle = os.path.join(agent.home, "bundle.tar.gz")
    say("fetch", url=shown(config.bundle_url), digest=config.bundle_digest)
    try:
        got = fetch(config.bundle_url, bundle)
        want = str(config.bundle_digest).lower().replace("sha256:", "")
        if got != want:
            agent.enter("failed", f"bundle digest mismatch: expected {want}, got {got}")
            return False
        say("unpack", workdir=agent.workdir)
        unpack(bundle, agent.workdir)
    except Unreadable as exc:
        agent.enter("failed", f"cannot fetch the bundle from {shown(config.bundle_url)}: {exc}")
        return False
    except Exception as exc:  # an untrusted archive: whatever breaks, it is the bundle's fault
        agent.enter("failed", f"cannot unpack the bundle: {exc}")
        return False
    finally:
        if os.path.exists(bundle):
            os.unlink(bundle)
    return True


# The job: bucket mounts, setup, run.


def parse_job(raw: Any, config: BootConfig) -> Json:
    """The job as sent, checked; raises Refusal(400) naming what is wrong."""
    if not isinstance(raw, dict):
        raise Refusal(400, "the job must be a JSON object")
    if not isinstance(raw.get("run"), str) or not raw["run"].strip():
        raise Refusal(400, "run must be a non-empty string")
    if raw.get("setup") is not None and not isinstance(raw["setup"], str):
        raise Refusal(400, "setup must be a string or null")
    for key in ("envs", "secrets"):
        items = raw.setdefault(key, {}) or {}
        if not isinstance(items, dict) or not all(
            isinstance(v, str) and ENV_NAME.match(str(k)) for k, v in items.items()
        ):
            raise Refusal(400, f"{key} must map shell variable names to strings")
    mounts = raw.setdefault("bucket_mounts", []) or []
    if not isinstance(mounts, list) or not all(valid_mount(m) for m in mounts):
        raise Refusal(400, "bucket_mounts must be a list of {target, source, urls}")
    expected = (config.service, config.replica_id, config.port)
    if (raw.get("service"), raw.get("replica_id"), raw.get("port")) != expected:
        raise Refusal(400, "this agent runs replica {1} of {0} on port {2}".format(*expected))
    return raw


def valid_mount(mount: Any) -> bool:
    if not isinstance(mount, dict) or not isinstance(mount.get("source"), str):
        return False
    target, urls = mount.get("target"), mount.get("urls")
    if not isinstance(target, str) or not os.path.isabs(os.path.expanduser(target)):
        return False
    return urls is None or (
        isinstance(urls, list)
        and all(isinstance(u, dict) and isinstance(u.get("url"), str) for u in urls)
        and all(isinstance(u.get("path", ""), str) for u in urls)
    )


def job_environment(job: Json, config: BootConfig) -> dict[str, str]:
    """The agent's environment, then envs, then secrets, then ours (ours win)."""
    port = str(config.port)
    ours = {"SERVE_SERVICE_NAME": config.service, "SERVE_REPLICA_ID": str(config.replica_id)}
    ours.update(SERVE_REPLICA_PORT=port, PORT=port)
    return {**os.environ, **job["envs"], **job["secrets"], **ours}


def write_env_file(path: str, job: Json) -> None:
    """envs and secrets as `export NAME='value'` lines in a file only its owner can read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        for name, value in {**job["envs"], **job["secrets"]}.items():
            out.write(f"export {name}={shlex.quote(value)}\n")


def cli_copies(source: str, target: str) -> list[list[str]]:
    """Cloud CLI commands that copy `source` (an object, else a prefix) to `target`, tried in
    order when the controller gave no signed URLs. Untested here: CI has no cloud CLIs."""
    if source.startswith("s3://"):
        return [
            ["aws", "s3", "cp", source, target],
            ["aws", "s3", "cp", "--recursive", source, target],
        ]
    if source.startswith("gs://"):
        return [
            ["gcloud", "storage", "cp", "-r", source, target],
            ["gsutil", "-m", "cp", "-r", source, target],
        ]
    if ".blob.core.windows.net/" in source:
        return [["azcopy", "copy", source, target, "--recursive"]]
    return []


def copy_bucket(mount: Json, env: dict[str, str]) -> None:
    """One bucket mount onto its target; raises Unreadable("cannot read <source>: ...")."""
    source, target = mount["source"], os.path.expanduser(mount["target"])
    say("mount", source=shown(source), target=target)
    try:
        if mount.get("urls") is not None:
            for item in mount["urls"]:
                dest = safe_join(target, item.get("path") or ".")
                os.makedirs(os.path.dirname(dest) or "/", exist_ok=True)
                fetch(item["url"], dest)
            return
        os.makedirs(os.path.dirname(target.rstrip("/")) or "/", exist_ok=True)
        commands = [c for c in cli_copies(source, target) if shutil.which(c[0])]
        reason = "no signed URLs were given and no cloud CLI for it is on this VM"
        for command in commands:
            done = subprocess.run(
                command, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            sys.stderr.buffer.write(done.stderr)
            if done.returncode == 0:
                return
            reason = (done.stderr.decode(errors="replace").strip().splitlines() or ["failed"])[-1]
        if not commands and source.startswith("https://"):
            fetch(source, target)
            return
        raise Unreadable(reason)
    except (Unreadable, ValueError, OSError) as exc:
        raise Unreadable(f"cannot read {source}: {exc}") from exc


def run_job(agent: Agent, job: Json) -> None:
    env = job_environment(job, agent.config)
    write_env_file(os.path.join(agent.home, "job.env"), job)
    agent.enter("mounting")
    for mount in job["bucket_mounts"]:
        copy_bucket(mount, env)
    if job.get("setup") and job["setup"].strip():
        agent.enter("setup")
        code = bash(["-e", "-c", job["setup"]], agent.workdir, env)
        if code != 0:
            agent.enter("failed", f"setup failed with exit code {exit_status(code)}")
            return
    agent.enter("running")
    code = bash(["-c", job["run"]], agent.workdir, env)
    agent.enter("exited", f"run exited with code {exit_status(code)}", exit_status(code))


def bash(args: list[str], cwd: str, env: dict[str, str]) -> int:
    """Runs bash with our stdout and stderr (the replica log); its exit status."""
    return subprocess.call(["bash", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL)


def exit_status(code: int) -> int:
    """A shell's convention: killed by signal N is 128 + N."""
    return 128 - code if code < 0 else code


def work(agent: Agent) -> None:
    """The worker thread: boot, wait for the job, run it."""
    try:
        if not boot(agent):
            return
        with agent.lock:
            waiting = agent.job is None
        if waiting:
            agent.enter("waiting_for_job")
        agent.job_arrived.wait()
        assert agent.job is not None
        run_job(agent, agent.job)
    except Unreadable as exc:
        agent.enter("failed", str(exc))
    except Exception as exc:  # the agent stays up to report it
        say("error", traceback=traceback.format_exc())
        agent.enter("failed", f"agent error: {exc!r}")


# Preemption notices (issue 13), read as each cloud documents; untested against real clouds.
METADATA = {
    "aws": "http://169.254.169.254",
    "azure": "http://169.254.169.254",
    "gcp": "http://metadata.google.internal",
}


def metadata(method: str, url: str, headers: dict[str, str]) -> str | None:
    """The body, or None on 404. Never through a proxy: the service is link-local."""
    request = urllib.request.Request(url, method=method, headers=headers)
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with direct.open(request, timeout=2) as reply:
            return str(reply.read(BODY_LIMIT).decode())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def read_notice(cloud: str, base: str) -> Any:
    """What the cloud says of a coming preemption, or None."""
    if cloud == "aws":  # IMDSv2 session token; spot/instance-action is 404 until scheduled
        ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        token = metadata("PUT", base + "/latest/api/token", ttl) or ""
        path = "/latest/meta-data/spot/instance-action"
        action = metadata("GET", base + path, {"X-aws-ec2-metadata-token": token})
        return json.loads(action) if action else None
    if cloud == "gcp":  # "TRUE" once the preemption has begun
        path = "/computeMetadata/v1/instance/preempted"
        flag = metadata("GET", base + path, {"Metadata-Flavor": "Google"}) or ""
        return "preempted" if flag.strip() == "TRUE" else None
    if cloud == "azure":  # Scheduled Events of type Preempt
        path = "/metadata/scheduledevents?api-version=2020-07-01"
        events = json.loads(metadata("GET", base + path, {"Metadata": "true"}) or "{}")
        return [e for e in events.get("Events", []) if e.get("EventType") == "Preempt"] or None
    return None


def notice_deadline(cloud: str, found: Any, seen: float) -> float:
    """When the cloud takes the instance: AWS's `time` (ISO 8601), Azure's `NotBefore`
    (RFC 1123), else the cloud's documented lead from when the notice was seen."""
    try:
        if cloud == "aws" and isinstance(found, dict) and found.get("time"):
            at = datetime.datetime.fromisoformat(str(found["time"]).replace("Z", "+00:00"))
            return at.timestamp()
        if cloud == "azure" and isinstance(found, list) and found[0].get("NotBefore"):
            return email.utils.parsedate_to_datetime(found[0]["NotBefore"]).timestamp()
    except (ValueError, TypeError, IndexError, AttributeError):
        pass
    return seen + NOTICE_LEAD.get(cloud, 30.0)


def watch_notices(agent: Agent) -> None:
    """Poll the cloud's metadata until a preemption notice appears; it then stays."""
    base = os.environ.get("SERVE_METADATA_URL") or METADATA.get(agent.config.cloud)
    complained = False
    while base and agent.notice is None:
        try:
            found = read_notice(agent.config.cloud, base.rstrip("/"))
        except Exception as exc:  # a metadata service that fails is retried, said once
            if not complained:
                say("notice_unreadable", reason=str(exc))
            complained, found = True, None
        if found:
            seen = time.time()
            deadline = notice_deadline(agent.config.cloud, found, seen)
            notice = {"kind": "preemption", "cloud": agent.config.cloud, "detail": found}
            agent.notice = {**notice, "seen_at": seen, "deadline": deadline}
            say("notice", kind="preemption", lead_seconds=round(deadline - seen, 1))
            return
        time.sleep(NOTICE_SECONDS)


# TLS and HTTP.


def make_certificate(directory: str) -> tuple[str, str]:
    """A fresh self-signed certificate and key (0600) in `directory`; raises RuntimeError."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    if shutil.which("openssl") is None:
        raise RuntimeError("openssl is not installed: install it (e.g. apt-get install openssl)")
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30"]
    command += ["-subj", "/CN=spotserve-replica", "-keyout", key, "-out", cert]
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"openssl could not make a certificate: {done.stderr.decode()[-300:]}")
    os.chmod(key, 0o600)
    return cert, key


class Handler(BaseHTTPRequestHandler):
    """Routes, bearer check, bounded JSON bodies; a bad request never escapes as an error."""

    server_version = "spotserve-agent"
    body_read = False
    sys_version = ""

    @property
    def agent(self) -> Agent:
        return self.server.agent  # type: ignore[attr-defined, no-any-return]

    def do_GET(self) -> None:
        self.route()

    do_POST = do_PUT = do_GET

    def route(self) -> None:
        method, (path, _, query) = self.command, self.path.partition("?")
        action = ROUTES.get((method, path))
        try:
            if action is None:
                raise Refusal(404, f"no {method} {path} here")
            if path != "/v1/hello" and not self.authorized():
                raise Refusal(401, "a valid bearer token is required")
            action(self, query)
        except Refusal as exc:
            if exc.status != 404:
                say("refused", method=method, path=path, status=exc.status, reason=str(exc))
            self.drain()
            self.reply(exc.status, {"error": str(exc)})
        except Exception as exc:  # the server thread outlives any one request
            say("error", method=method, path=path, reason=repr(exc))
            self.reply(500, {"error": "internal error"})

    def authorized(self) -> bool:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        expected = self.agent.config.token.encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), expected)

    def body(self, limit: int) -> Any:
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            raise Refusal(411, "a Content-Length is required")
        if int(length) > limit:
            raise Refusal(413, f"the body is larger than {limit} bytes")
        self.body_read = True
        try:
            return json.loads(self.rfile.read(int(length)))
        except ValueError:
            raise Refusal(400, "the body is not JSON") from None

    def drain(self) -> None:
        """Reads and drops an unread body (up to 4 job limits) before a refusal: closing with
        unread bytes makes TCP reset the connection, and the client would miss the answer."""
        length = self.headers.get("Content-Length", "")
        left = int(length) if length.isdigit() and not self.body_read else 0
        while 0 < left <= 4 * JOB_BODY_LIMIT:
            chunk = self.rfile.read(min(left, BODY_LIMIT))
            left = left - len(chunk) if chunk else 0

    def reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        kind = "application/octet-stream" if isinstance(payload, bytes) else "application/json"
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def hello(self, query: str) -> None:
        body = self.body(BODY_LIMIT)
        nonce = body.get("nonce") if isinstance(body, dict) else None
        try:
            raw = bytes.fromhex(str(nonce))
        except ValueError:
            raw = b""
        if len(raw) != NONCE_BYTES:
            raise Refusal(400, f"nonce must be {NONCE_BYTES} bytes in hex")
        key = self.agent.config.token.encode()
        proof = hmac.new(key, raw + self.agent.cert_sha256, hashlib.sha256).hexdigest()
        self.reply(200, {"proof": proof, "phase": self.agent.status()["phase"]})

    def put_job(self, query: str) -> None:
        job = parse_job(self.body(JOB_BODY_LIMIT), self.agent.config)
        phase = self.agent.accept(job)
        say("job", accepted=True, envs=sorted(job["envs"]), secrets=len(job["secrets"]))
        self.reply(202, {"phase": phase})

    def get_status(self, query: str) -> None:
        self.reply(200, self.agent.status())

    def get_notice(self, query: str) -> None:
        self.reply(200, {"notice": self.agent.notice})

    def get_logs(self, query: str) -> None:
        args = dict(p.partition("=")[::2] for p in query.split("&") if p)
        if not all(args.get(k, "0").isdigit() for k in ("offset", "limit")):
            raise Refusal(400, "offset and limit must be non-negative integers")
        offset, limit = int(args.get("offset", 0)), int(args.get("limit", LOG_READ_LIMIT))
        try:
            with open(self.agent.log_path, "rb") as log:
                size = os.fstat(log.fileno()).st_size
                log.seek(min(offset, size))
                data = log.read(max(0, min(limit, LOG_READ_LIMIT, size - offset)))
        except FileNotFoundError:
            size, data = 0, b""
        self.reply(200, data, {"X-Log-Size": str(size)})

    def log_message(self, format: str, *args: Any) -> None:
        """Routine requests are not logged: the controller polls, and this is the replica log."""


ROUTES = {
    ("POST", "/v1/hello"): Handler.hello,
    ("PUT", "/v1/job"): Handler.put_job,
    ("GET", "/v1/status"): Handler.get_status,
    ("GET", "/v1/logs"): Handler.get_logs,
    ("GET", "/v1/notice"): Handler.get_notice,
}


class AgentServer(ThreadingHTTPServer):
    """HTTPS with the TLS handshake in the connection's own thread, so a slow or hostile
    client never holds up the accept loop."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], tls: ssl.SSLContext, agent: Agent) -> None:
        super().__init__(address, Handler)
        self.tls = tls
        self.agent = agent

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(REQUEST_SECONDS)
        with self.tls.wrap_socket(request, server_side=True) as connection:
            super().finish_request(connection, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        say("connection_error", peer=str(client_address[0]), reason=repr(sys.exc_info()[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="spotserve replica agent")
    parser.add_argument("--config", required=True)
    default_log = os.environ.get("SERVE_REPLICA_LOG") or "/var/log/spotserve-replica.log"
    parser.add_argument("--log", default=default_log, help="the replica log (our stdout)")
    args = parser.parse_args(argv)
    home = os.path.dirname(os.path.abspath(args.config))
    try:
        config = BootConfig.load(args.config)
        cert, key = make_certificate(os.path.join(home, "tls"))
    except (OSError, ValueError, TypeError, RuntimeError) as exc:  # no port to report it on
        say("phase", phase="failed", detail=str(exc))
        return 1
    with open(cert) as fh:
        cert_sha256 = hashlib.sha256(ssl.PEM_cert_to_DER_cert(fh.read())).digest()
    agent = Agent(config, home, args.log, cert_sha256)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    tls.load_cert_chain(cert, key)
    host = os.environ.get("SERVE_REPLICA_HOST") or "0.0.0.0"
    server = AgentServer((host, config.agent_port), tls, agent)
    say("listening", host=host, port=config.agent_port, cert_sha256=cert_sha256.hex())
    threading.Thread(target=work, args=(agent,), name="work", daemon=True).start()
    threading.Thread(target=watch_notices, args=(agent,), name="notices", daemon=True).start()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
