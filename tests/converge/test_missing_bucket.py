"""A GCS bucket that does not exist stops the deploy on the first application server, with a
message naming the storage and the bucket, while every server keeps serving; the next good run
puts things back. (SeaweedFS makes its own bucket: with cluster_storage s3, nothing to test.)"""

from __future__ import annotations

import uuid
from pathlib import Path

import ansible_runner
import pytest
from cluster_support import (
    address,
    changed_hosts,
    describe,
    get_host,
    group_hosts,
    host_fact,
    output,
    run_playbook,
)

DEPLOY = "--limit was --tags django_was"


def ready(inventory: Path, port: int) -> dict[str, int]:
    """The /readyz status of every application server, asked from the first balancer (the
    firewall admits only the balancers to gunicorn)."""
    balancer = get_host(inventory, group_hosts(inventory, "lb")[0])
    codes = {}
    for host in group_hosts(inventory, "was"):
        url = f"http://{address(inventory, host)}:{port}/readyz"
        codes[host] = int(balancer.check_output("curl -s -o /dev/null -w '%%{http_code}' %s", url))
    return codes


def test_a_missing_bucket_stops_the_deploy_and_nothing_stops_serving(
    converged_cluster: ansible_runner.Runner, inventory: Path, tmp_path: Path
) -> None:
    first = group_hosts(inventory, "was")[0]
    # What the first server runs with, as its role reports it.
    was = host_fact(get_host(inventory, first), "django_was")
    if was["storage"] != "gcs":
        pytest.skip(f"{inventory} keeps media in {was['storage']}, which makes its own bucket")
    port = int(was["port"])
    bucket = f"missing-{uuid.uuid4().hex[:8]}"

    broken = run_playbook(
        "site.yml", inventory, tmp_path / "broken", f"{DEPLOY} -e cluster_bucket={bucket}"
    )
    text = " ".join(output(broken).split())
    assert broken.status == "failed", describe(broken)
    assert f"GCS bucket '{bucket}' does not exist at http://" in text, describe(broken)
    assert "Not ready: storage." in text, describe(broken)
    # Serial: the first server stopped the rollout; only its environment file was written, and
    # no server was reloaded with it.
    assert set(changed_hosts(broken)) <= {first}, describe(broken)
    assert set(ready(inventory, port).values()) == {200}, ready(inventory, port)

    fixed = run_playbook("site.yml", inventory, tmp_path / "fixed", DEPLOY)
    assert fixed.status == "successful", describe(fixed)
    assert set(ready(inventory, port).values()) == {200}, ready(inventory, port)
