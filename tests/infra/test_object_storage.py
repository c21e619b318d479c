"""Object storage (role object_storage): SeaweedFS S3; the app writes, anonymous only reads."""

from __future__ import annotations

import uuid

import pytest
from cluster_support import Tier, probe
from testinfra.host import Host

SIGV4 = "aws:amz:us-east-1:s3"


def s3_url(storage: Tier, key: str = "") -> str:
    url = f"http://{storage.address}:{storage['object_storage_s3_port']}/"
    return url + f"{storage['object_storage_bucket']}/{key}" if key is not None else url


def curl(host: Host, *args: str, signed: Tier | None = None):
    """curl printing the body, then the status code on its own last line."""
    auth: list[str] = []
    if signed is not None:
        keys = f"{signed['object_storage_access_key']}:{signed['object_storage_secret_key']}"
        auth = ["--aws-sigv4", SIGV4, "--user", keys]
    result = host.run(
        "curl -sS --max-time 20 -w '\\n%%{http_code}' "
        + " ".join(["%s"] * (len(auth) + len(args))),
        *auth,
        *args,
    )
    assert result.rc == 0, result.stderr
    body, _, code = result.stdout.rpartition("\n")
    return int(code), body


@pytest.fixture
def stored_object(was_host: Host, storage: Tier):
    """An object the app wrote from this WAS: (key, content); deleted afterwards."""
    key = f"media/infra-tests/{uuid.uuid4().hex}.txt"
    content = f"written by {was_host.address}"
    was_host.run("printf %s %s > /tmp/infra-object.txt", "%s", content)
    code, body = curl(was_host, "-T", "/tmp/infra-object.txt", s3_url(storage, key), signed=storage)
    assert code == 200, body
    yield key, content
    code, body = curl(was_host, "-X", "DELETE", s3_url(storage, key), signed=storage)
    assert code == 204, body


def test_seaweedfs_is_running_and_enabled(storage_host: Host) -> None:
    service = storage_host.service("seaweedfs")
    assert service.is_running
    assert service.is_enabled


def test_seaweedfs_runs_as_its_own_user(storage_host: Host, storage: Tier) -> None:
    users = {p.user for p in storage_host.process.filter(comm="weed")}
    assert users == {storage["object_storage_user"]}


def test_only_s3_listens_beyond_loopback(storage_host: Host, storage: Tier) -> None:
    out = storage_host.check_output("ss -Hltn")
    weed_ports = {
        storage["object_storage_master_port"],
        storage["object_storage_volume_port"],
        storage["object_storage_filer_port"],
    }
    exposed = set()
    for line in out.splitlines():
        local = line.split()[3]
        host, _, port = local.rpartition(":")
        if host not in ("127.0.0.1", "[::1]") and int(port) in weed_ports | {
            p + 10000 for p in weed_ports
        }:
            exposed.add(local)
    assert exposed == set()
    s3 = f"{storage.address}:{storage['object_storage_s3_port']}"
    assert s3 in {line.split()[3] for line in out.splitlines()}


@pytest.mark.parametrize(
    "port_setting",
    ["object_storage_master_port", "object_storage_volume_port", "object_storage_filer_port"],
)
def test_internal_apis_are_unreachable_from_a_was(
    was_host: Host, storage: Tier, port_setting: str
) -> None:
    assert probe(was_host, storage.address, storage[port_setting]) == "refused"


def test_the_app_reads_what_it_wrote(was_host: Host, storage: Tier, stored_object) -> None:
    key, content = stored_object
    assert curl(was_host, s3_url(storage, key), signed=storage) == (200, content)


def test_anonymous_clients_read_objects(lb_host: Host, storage: Tier, stored_object) -> None:
    key, content = stored_object
    assert curl(lb_host, s3_url(storage, key)) == (200, content)


def test_anonymous_clients_may_not_write(lb_host: Host, storage: Tier) -> None:
    key = f"media/infra-tests/anonymous-{uuid.uuid4().hex}.txt"
    code, body = curl(lb_host, "-X", "PUT", "--data", "x", s3_url(storage, key))
    assert code == 403 and "AccessDenied" in body, body


def test_anonymous_clients_may_not_list(lb_host: Host, storage: Tier) -> None:
    code, body = curl(lb_host, s3_url(storage, "?list-type=2"))
    assert code == 403 and "AccessDenied" in body, body


def test_anonymous_clients_may_not_delete(lb_host: Host, storage: Tier, stored_object) -> None:
    key, _ = stored_object
    code, body = curl(lb_host, "-X", "DELETE", s3_url(storage, key))
    assert code == 403 and "AccessDenied" in body, body


def test_a_wrong_secret_is_refused(was_host: Host, storage: Tier) -> None:
    wrong = Tier(
        storage.name, storage.address, {**storage.settings, "object_storage_secret_key": "x"}
    )
    code, body = curl(
        was_host, "-X", "PUT", "--data", "x", s3_url(storage, "media/x"), signed=wrong
    )
    assert code == 403, body


def test_the_app_is_confined_to_its_bucket(was_host: Host, storage: Tier) -> None:
    other = f"http://{storage.address}:{storage['object_storage_s3_port']}/infra-tests-other"
    code, body = curl(was_host, "-X", "PUT", other, signed=storage)
    assert code == 403 and "AccessDenied" in body, body


def test_s3_grpc_is_closed_to_other_hosts_when_firewalled(lb_host: Host, storage: Tier) -> None:
    if not storage.firewall:
        pytest.skip("firewall_enabled is false: nothing guards the S3 gateway's gRPC port")
    assert probe(lb_host, storage.address, storage["object_storage_s3_port"] + 10000) == "refused"
