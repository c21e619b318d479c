"""The balancer (role apache_lb): members from the inventory, modules, balancer-manager locked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cluster_support import address, group_hosts, host_vars
from testinfra.host import Host

SITE = "/etc/apache2/sites-enabled/cluster.conf"
MODULES = [
    "proxy",
    "proxy_http",
    "proxy_balancer",
    "lbmethod_byrequests",
    "headers",
    "proxy_hcheck",
    "status",
    "slotmem_shm",
]
MEMBER = re.compile(r'^\s*BalancerMember\s+"?http://([^:/"\s]+):\d+"?\s.*?\broute=(\S+)', re.M)


def was_members(inventory: Path) -> set[tuple[str, str]]:
    """(address, route) of every host of group was, as the inventory says."""
    routes = host_vars(inventory, ("django_was_route",))
    return {
        (address(inventory, h), str(routes[h]["django_was_route"] or h))
        for h in group_hosts(inventory, "was")
    }


def lb_address(inventory: Path) -> str:
    return address(inventory, group_hosts(inventory, "lb")[0])


def manager_status(client: Host, lb: str) -> str:
    return client.check_output(
        "curl -s -o /dev/null -w '%%{http_code}' http://%s/balancer-manager", lb
    )


def test_apache_is_running_and_enabled(lb_host: Host) -> None:
    apache = lb_host.service("apache2")
    assert apache.is_running
    assert apache.is_enabled


def test_the_members_are_exactly_the_was_group(inventory: Path, lb_host: Host) -> None:
    found = MEMBER.findall(lb_host.file(SITE).content_string)
    assert len(found) == len(set(found)), f"a member is listed twice: {found}"
    assert set(found) == was_members(inventory)


@pytest.mark.parametrize("module", MODULES)
def test_the_module_is_loaded(lb_host: Host, module: str) -> None:
    loaded = lb_host.check_output("apache2ctl -M")
    assert re.search(rf"^\s*{module}_module\b", loaded, re.M)


def test_the_default_site_is_disabled(lb_host: Host) -> None:
    assert not lb_host.file("/etc/apache2/sites-enabled/000-default.conf").exists


def test_every_member_passes_its_health_check(inventory: Path, lb_host: Host) -> None:
    page = lb_host.check_output("curl -sf http://127.0.0.1/balancer-manager")
    for member, _route in was_members(inventory):
        row = re.search(rf"http://{re.escape(member)}:\d+</a>(.*?)</tr>", page, re.S)
        assert row, f"{member} is not a member"
        assert "Init Ok" in row.group(1), f"{member}: {row.group(1)}"


def test_the_balancer_manager_answers_the_balancer_itself(inventory: Path, lb_host: Host) -> None:
    assert manager_status(lb_host, lb_address(inventory)) == "200"


def test_the_balancer_manager_is_refused_to_an_application_server(
    inventory: Path, was_host: Host
) -> None:
    assert manager_status(was_host, lb_address(inventory)) == "403"
