"""The balancer (role apache_lb): members from the inventory, modules, balancer-manager locked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cluster_support import FactReader, address, group_hosts, route
from testinfra.host import Host

MEMBER = re.compile(r'^\s*BalancerMember\s+"?http://([^:/"\s]+):(\d+)"?\s.*?\broute=(\S+)', re.M)


def was_members(inventory: Path, read_fact: FactReader) -> set[tuple[str, int, str]]:
    """(address, port, route) of every host of group was: the inventory and the WAS's own fact."""
    return {
        (address(inventory, h), int(read_fact(h, "django_was")["port"]), route(inventory, h))
        for h in group_hosts(inventory, "was")
    }


def lb_url(inventory: Path, read_fact: FactReader, path: str, name: str = "") -> str:
    """A URL of a balancer (the first by default) on its own address, as any client reaches it."""
    name = name or group_hosts(inventory, "lb")[0]
    return f"http://{address(inventory, name)}:{read_fact(name, 'apache_lb')['http_port']}{path}"


def status_code(client: Host, url: str) -> str:
    return client.check_output("curl -s -o /dev/null -w '%%{http_code}' %s", url)


def test_apache_is_running_and_enabled(lb_host: Host, lb_fact: dict[str, Any]) -> None:
    apache = lb_host.service(lb_fact["service"])
    assert apache.is_running
    assert apache.is_enabled


def test_the_site_is_enabled(lb_host: Host, lb_fact: dict[str, Any]) -> None:
    site = Path(lb_fact["site_file"]).stem
    assert lb_host.run("a2query -s %s", site).rc == 0, f"{site} is not enabled"


def test_the_members_are_exactly_the_was_group(
    inventory: Path, read_fact: FactReader, lb_host: Host, lb_fact: dict[str, Any]
) -> None:
    found = MEMBER.findall(lb_host.file(lb_fact["site_file"]).content_string)
    assert len(found) == len(set(found)), f"a member is listed twice: {found}"
    members = {(member, int(port), member_route) for member, port, member_route in found}
    assert members == was_members(inventory, read_fact)


def test_the_fact_lists_the_same_members(
    inventory: Path, read_fact: FactReader, lb_fact: dict[str, Any]
) -> None:
    """Other tests take routes and ports from this fact: it must tell the truth."""
    listed = {(m["address"], int(m["port"]), m["route"]) for m in lb_fact["members"]}
    assert listed == was_members(inventory, read_fact)
    assert {m["name"] for m in lb_fact["members"]} == set(group_hosts(inventory, "was"))


def test_the_modules_are_loaded(lb_host: Host, lb_fact: dict[str, Any]) -> None:
    loaded = set(re.findall(r"^\s*(\w+)_module\b", lb_host.check_output("apache2ctl -M"), re.M))
    assert lb_fact["modules"], "the fact lists the modules the balancer needs"
    assert set(lb_fact["modules"]) - loaded == set()


def test_the_default_site_is_disabled(lb_host: Host) -> None:
    assert lb_host.run("a2query -s 000-default").rc != 0


def test_every_member_passes_its_health_check(lb_host: Host, lb_fact: dict[str, Any]) -> None:
    page = lb_host.check_output(
        "curl -sf http://127.0.0.1:%s%s", str(lb_fact["http_port"]), lb_fact["manager_path"]
    )
    for member in lb_fact["members"]:
        row = re.search(rf"http://{re.escape(member['address'])}:\d+</a>(.*?)</tr>", page, re.S)
        assert row, f"{member['name']} is not a member"
        assert "Init Ok" in row.group(1), f"{member['name']}: {row.group(1)}"


def test_the_balancer_manager_answers_the_balancer_itself(
    inventory: Path, read_fact: FactReader, lb_host: Host, lb_fact: dict[str, Any]
) -> None:
    own = lb_url(inventory, read_fact, lb_fact["manager_path"], lb_host.inventory_name)  # type: ignore[attr-defined]
    assert status_code(lb_host, own) == "200"


def test_the_balancer_manager_is_refused_to_an_application_server(
    inventory: Path, read_fact: FactReader, was_host: Host
) -> None:
    name = group_hosts(inventory, "lb")[0]
    manager = read_fact(name, "apache_lb")["manager_path"]
    assert status_code(was_host, lb_url(inventory, read_fact, manager)) == "403"
