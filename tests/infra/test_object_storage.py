"""Object storage (role object_storage): SeaweedFS S3; the app writes, anonymous only reads."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cluster_support import CLOSED, Tier, is_loopback, listening_sockets, probe_closed
from cluster_support import curl as any_curl
from testinfra.host import Host

SIGV4 = "aws:amz:us-east-1:s3"


def s3_url(storage: Tier, key: str = "") -> str:
    return f"http://{storage.address}:{storage['s3_port']}/{storage['bucket']}/{key}"


# curl's --user for the app's S3 identity: the keys of a WAS's environment file, read there.
APP_KEYS = '"$DJANGO_S3_ACCESS_KEY:$DJANGO_S3_SECRET_KEY"'
# The app's access key with a wrong secret key.
WRONG_SECRET = '"$DJANGO_S3_ACCESS_KEY:x"'


def curl(
    host: Host, *args: str, signed: str | None = None, user: str = APP_KEYS
) -> tuple[int, str]:
    """curl on a host; with `signed` (the environment file of a WAS, `host`), signed with the
    app's S3 keys from that file, read there: the keys never reach a command line."""
    if signed is None:
        return any_curl(host, *args)
    return any_curl(host, "--aws-sigv4", SIGV4, *args, env_file=signed, user=user)


@pytest.fixture
def stored_object(
    was_host: Host, was_fact: dict[str, Any], storage: Tier
) -> Iterator[tuple[str, str]]:
    """An object the app wrote from this WAS: (key, content); deleted afterwards."""
    key = f"media/infra-tests/{uuid.uuid4().hex}.txt"
    content = f"written by {was_host.address}"
    signed = was_fact["env_file"]
    was_host.run("printf %s %s > /tmp/infra-object.txt", "%s", content)
    code, body = curl(was_host, "-T", "/tmp/infra-object.txt", s3_url(storage, key), signed=signed)
    assert code == 200, body
    yield key, content
    code, body = curl(was_host, "-X", "DELETE", s3_url(storage, key), signed=signed)
    assert code == 204, body


def test_seaweedfs_is_running_and_enabled(storage_host: Host, storage_fact: dict[str, Any]) -> None:
    service = storage_host.service(storage_fact["service"])
    assert service.is_running
    assert service.is_enabled


def test_seaweedfs_runs_as_its_own_user(storage_host: Host, storage_fact: dict[str, Any]) -> None:
    users = {p.user for p in storage_host.process.filter(comm="weed")}
    assert users == {storage_fact["user"]}


def test_s3_listens_on_the_private_address(
    storage_host: Host, storage_fact: dict[str, Any]
) -> None:
    assert (storage_host.address, storage_fact["s3_port"]) in listening_sockets(storage_host)


def test_internal_apis_listen_on_loopback_only(
    storage_host: Host, storage_fact: dict[str, Any]
) -> None:
    # Master, volume server and filer, and the gRPC port (+10000) of each.
    ports = set(storage_fact["internal_ports"].values())
    internal = ports | {p + 10000 for p in ports}
    exposed = {
        (address, port)
        for address, port in listening_sockets(storage_host)
        if port in internal and not is_loopback(address)
    }
    assert exposed == set()


@pytest.mark.parametrize("api", ["master", "volume", "filer"])
def test_internal_apis_are_unreachable_from_a_was(was_host: Host, storage: Tier, api: str) -> None:
    answer = probe_closed(was_host, storage.address, storage["internal_ports"][api])
    assert answer in CLOSED, answer


def test_the_app_reads_what_it_wrote(
    was_host: Host, was_fact: dict[str, Any], storage: Tier, stored_object: tuple[str, str]
) -> None:
    key, content = stored_object
    assert curl(was_host, s3_url(storage, key), signed=was_fact["env_file"]) == (200, content)


def test_anonymous_clients_read_objects(
    lb_host: Host, storage: Tier, stored_object: tuple[str, str]
) -> None:
    key, content = stored_object
    assert curl(lb_host, s3_url(storage, key)) == (200, content)


def test_anonymous_clients_may_not_write(lb_host: Host, storage: Tier) -> None:
    key = f"media/infra-tests/anonymous-{uuid.uuid4().hex}.txt"
    code, body = curl(lb_host, "-X", "PUT", "--data", "x", s3_url(storage, key))
    assert code == 403 and "AccessDenied" in body, body


def test_anonymous_clients_may_not_list(lb_host: Host, storage: Tier) -> None:
    code, body = curl(lb_host, s3_url(storage, "?list-type=2"))
    assert code == 403 and "AccessDenied" in body, body


def test_anonymous_clients_may_not_delete(
    lb_host: Host, storage: Tier, stored_object: tuple[str, str]
) -> None:
    key, _ = stored_object
    code, body = curl(lb_host, "-X", "DELETE", s3_url(storage, key))
    assert code == 403 and "AccessDenied" in body, body


def test_a_wrong_secret_is_refused(was_host: Host, was_fact: dict[str, Any], storage: Tier) -> None:
    url = s3_url(storage, "media/x")
    code, body = curl(
        was_host, "-X", "PUT", "--data", "x", url, signed=was_fact["env_file"], user=WRONG_SECRET
    )
    assert code == 403, body


def test_the_app_is_confined_to_its_bucket(
    was_host: Host, was_fact: dict[str, Any], storage: Tier
) -> None:
    other = f"http://{storage.address}:{storage['s3_port']}/infra-tests-other"
    code, body = curl(was_host, "-X", "PUT", other, signed=was_fact["env_file"])
    assert code == 403 and "AccessDenied" in body, body


def test_s3_grpc_is_closed_to_other_hosts_when_firewalled(lb_host: Host, storage: Tier) -> None:
    if not storage.firewall:
        pytest.skip("the firewall is disabled (firewall.fact): nothing guards the S3 gRPC port")
    answer = probe_closed(lb_host, storage.address, storage["s3_grpc_port"])
    assert answer in CLOSED, answer
