"""The lab reads its inventory through Ansible and refuses bad input before creating anything."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from lab.errors import LabError
from lab.spec import check_overlaps, read_inventory, spec_from_inventory
from lab.system import require_root, require_tools

REPO = Path(__file__).resolve().parents[2]


def make_inventory(tmp_path: Path, hosts: dict[str, dict[str, str]], **lab_vars: str) -> Path:
    settings = {"lab_name": "unit", "lab_subnet": "10.79.0.0/24", **lab_vars}
    inventory = {"all": {"vars": settings, "children": {"was": {"hosts": hosts}}}}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


def spec_of(tmp_path: Path, hosts: dict[str, dict[str, str]], **lab_vars: str):
    return spec_from_inventory(read_inventory(make_inventory(tmp_path, hosts, **lab_vars)))


def test_default_lab_inventory_has_the_hosts_of_the_design() -> None:
    spec = spec_from_inventory(read_inventory(REPO / "inventory/lab"))
    assert {h.name: str(h.address) for h in spec.hosts} == {
        "lb1": "10.77.0.10",
        "lb2": "10.77.0.9",
        "was1": "10.77.0.11",
        "was2": "10.77.0.12",
        "db1": "10.77.0.21",
        "db2": "10.77.0.22",
        "redis1": "10.77.0.31",
        "redis2": "10.77.0.32",
        "store1": "10.77.0.41",
        "mon1": "10.77.0.51",
        "build1": "10.77.0.61",
    }
    assert spec.host("was1").groups == ("was",)
    assert spec.proxy_url == "http://10.77.0.1:8888"
    assert spec.published_host is not None and spec.published_host.name == "lb1"
    # Two balancers: the published ports follow the floating address keepalived moves.
    assert str(spec.floating_address) == "10.77.0.100"
    assert spec.published_target == ("the balancers' floating address", spec.floating_address)
    assert dict(spec.publish) == {8080: 80, 8443: 443}


def test_one_balancer_without_floating_address_is_published_itself(tmp_path: Path) -> None:
    path = make_inventory(tmp_path, {})
    data = yaml.safe_load(path.read_text())
    data["all"]["children"] = {"lb": {"hosts": {"lb1": {"ansible_host": "10.79.0.10"}}}}
    path.write_text(yaml.safe_dump(data))
    spec = spec_from_inventory(read_inventory(path))
    assert spec.floating_address is None
    assert spec.published_target == ("lb1", ipaddress.IPv4Address("10.79.0.10"))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10.79.0.300", "is not an IPv4 address"),
        ("10.80.0.9", "is outside lab_subnet"),
        ("10.79.0.1", "the lab bridge's own address"),
        ("10.79.0.5", "is h1's own address"),
    ],
)
def test_a_bad_floating_address_is_refused(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(LabError, match=message) as err:
        spec_of(tmp_path, {"h1": {"ansible_host": "10.79.0.5"}}, cluster_lb_floating_address=value)
    assert "set cluster_lb_floating_address to a free address inside 10.79.0.0/24" in str(err.value)


def test_a_lab_without_lb_publishes_nothing(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, {"h1": {"ansible_host": "10.79.0.5"}})
    assert spec.published_host is None
    assert spec.bridge == "lab-unit"
    assert str(spec.gateway) == "10.79.0.1"


def test_not_root_is_refused() -> None:
    with pytest.raises(LabError, match="must run as root"):
        require_root(euid=1000)


def test_a_missing_tool_is_named_with_its_package(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="debootstrap") as err:
        require_tools(path=str(tmp_path))
    assert "systemd-container" in str(err.value)


def test_address_outside_the_subnet(tmp_path: Path) -> None:
    with pytest.raises(LabError, match=r"h1: address 10\.80\.0\.5 is outside lab_subnet"):
        spec_of(tmp_path, {"h1": {"ansible_host": "10.80.0.5"}})


def test_address_of_the_bridge_itself(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="bridge's own address"):
        spec_of(tmp_path, {"h1": {"ansible_host": "10.79.0.1"}})


def test_two_hosts_with_one_address(tmp_path: Path) -> None:
    hosts = {"h1": {"ansible_host": "10.79.0.5"}, "h2": {"ansible_host": "10.79.0.5"}}
    with pytest.raises(LabError, match=r"h1 and h2 have the same address 10\.79\.0\.5"):
        spec_of(tmp_path, hosts)


def test_host_without_address(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="h1 has no ansible_host"):
        spec_of(tmp_path, {"h1": {}})


@pytest.mark.parametrize("name", ["web_1", "-web", "a" * 64])
def test_host_name_that_is_not_a_hostname(tmp_path: Path, name: str) -> None:
    with pytest.raises(LabError, match="is not a valid hostname"):
        spec_of(tmp_path, {name: {"ansible_host": "10.79.0.5"}})


def test_subnet_overlapping_another_lab(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, {"h1": {"ansible_host": "10.79.0.5"}})
    others = {"other": ipaddress.IPv4Network("10.79.0.0/16")}
    with pytest.raises(LabError, match="overlaps lab 'other'"):
        check_overlaps(spec, others, routes=[])


def test_subnet_overlapping_a_route_of_this_machine(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, {"h1": {"ansible_host": "10.79.0.5"}})
    routes = [{"dst": "default", "dev": "eth0"}, {"dst": "10.79.0.128/25", "dev": "eth1"}]
    with pytest.raises(LabError, match=r"overlaps this machine's route 10\.79\.0\.128/25"):
        check_overlaps(spec, {}, routes)


def test_own_bridge_route_and_own_state_are_not_overlaps(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, {"h1": {"ansible_host": "10.79.0.5"}})
    check_overlaps(spec, {"unit": spec.subnet}, [{"dst": "10.79.0.0/24", "dev": "lab-unit"}])


def test_bad_lab_name(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="lab_name 'Has_Underscore' is not valid"):
        spec_of(tmp_path, {"h1": {"ansible_host": "10.79.0.5"}}, lab_name="Has_Underscore")


def test_unknown_release(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="lab_release 'sid' is not supported"):
        spec_of(tmp_path, {"h1": {"ansible_host": "10.79.0.5"}}, lab_release="sid")


def test_cli_reports_bad_input_cleanly_and_creates_nothing(tmp_path: Path, capsys) -> None:
    from lab import cli
    from lab.paths import STATE_ROOT

    inventory = make_inventory(tmp_path, {"h1": {"ansible_host": "10.80.0.5"}}, lab_name="unitcli")
    assert cli.main(["-i", str(inventory), "up"]) == 2
    assert "outside lab_subnet" in capsys.readouterr().err
    assert not (STATE_ROOT / "unitcli").exists()
