"""The lab's stand-in for Google Cloud Storage (role gcs_emulator): the GCS API on the private
address, the bucket made, public object URLs readable and not writable by anonymous clients.
Who may reach its port is the port matrix's part (test_firewall.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from cluster_support import curl, group_hosts, is_loopback, listening_sockets
from testinfra.host import Host


@pytest.fixture(scope="module")
def emulator(inventory: Any, read_fact: Any) -> dict[str, Any]:
    names = group_hosts(inventory, "gcs_emulator")
    if not names:
        pytest.skip(f"{inventory} has no gcs_emulator host")
    return read_fact(names[0], "gcs_emulator")


def test_the_emulator_is_running_and_enabled(
    gcs_emulator_host: Host, gcs_emulator_fact: dict[str, Any]
) -> None:
    service = gcs_emulator_host.service(gcs_emulator_fact["service"])
    assert service.is_running and service.is_enabled


def test_the_emulator_listens_on_the_private_address_only(
    gcs_emulator_host: Host, gcs_emulator_fact: dict[str, Any]
) -> None:
    sockets = listening_sockets(gcs_emulator_host)
    port = gcs_emulator_fact["port"]
    assert (gcs_emulator_host.address, port) in sockets
    assert {a for a, p in sockets if p == port and not is_loopback(a)} == {
        gcs_emulator_host.address
    }


def test_the_bucket_exists(was_host: Host, emulator: dict[str, Any]) -> None:
    for bucket in emulator["buckets"]:
        code, body = curl(was_host, f"{emulator['url']}/storage/v1/b/{quote(bucket)}")
        assert code == 200 and json.loads(body)["name"] == bucket, body


@pytest.fixture
def uploaded(was_host: Host, emulator: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """An object written through the JSON API from a WAS, as the app does: (name, content)."""
    bucket = emulator["buckets"][0]
    name = f"media/infra-tests/{uuid.uuid4().hex}.txt"
    content = f"written by {was_host.address}"
    code, body = curl(
        was_host,
        "-X",
        "POST",
        "-H",
        "Content-Type: text/plain",
        "--data-binary",
        content,
        f"{emulator['url']}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={quote(name)}",
    )
    assert code == 200, body
    yield name, content
    code, body = curl(
        was_host, "-X", "DELETE", f"{emulator['url']}/storage/v1/b/{bucket}/o/{quote(name, '')}"
    )
    # Google answers 204; fake-gcs-server 200.
    assert code in (200, 204), body


def test_the_balancer_reads_objects_by_their_public_url(
    lb_host: Host, emulator: dict[str, Any], uploaded: tuple[str, str]
) -> None:
    name, content = uploaded
    url = f"{emulator['url']}/{emulator['buckets'][0]}/{name}"
    assert curl(lb_host, url) == (200, content)


def test_public_urls_take_no_writes(lb_host: Host, emulator: dict[str, Any]) -> None:
    url = f"{emulator['url']}/{emulator['buckets'][0]}/media/infra-tests/anonymous.txt"
    code, _ = curl(lb_host, "-X", "PUT", "--data", "x", url)
    assert 400 <= code < 500
