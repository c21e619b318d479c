"""Read routing (core.dbrouter): reads to a healthy replica, writes and the writer's own reads to
"default", the client's reads pinned after its writes, and every read on "default" while no
replica answers. The replicas here are stand-ins decided by a probe; the lab's
tests/e2e/test_db_reads.py checks the same against real MariaDB replicas."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from config import env
from core import dbrouter


@pytest.fixture(autouse=True)
def fresh_state() -> Iterator[None]:
    """No remembered health, and no write seen yet (other tests write outside any request)."""
    dbrouter.forget_health()
    tokens = (dbrouter.request_wrote.set(False), dbrouter.client_wrote_lately.set(False))
    yield
    dbrouter.request_wrote.reset(tokens[0])
    dbrouter.client_wrote_lately.reset(tokens[1])


@pytest.fixture
def replicas(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """Two replica aliases whose health the test sets (True: answers and is read-only)."""
    state = {"replica_0": True, "replica_1": True}
    monkeypatch.setattr(dbrouter, "replica_aliases", lambda: list(state))
    monkeypatch.setattr(dbrouter, "serves_reads", lambda alias: state[alias])
    original = dbrouter.healthy
    monkeypatch.setattr(dbrouter, "healthy", lambda alias: original(alias, dbrouter.serves_reads))
    return state


def test_a_plain_read_goes_to_a_healthy_replica(replicas: dict[str, bool]) -> None:
    replicas["replica_0"] = False
    assert {dbrouter.read_alias() for _ in range(20)} == {"replica_1"}


def test_without_a_healthy_replica_reads_go_to_the_writer(replicas: dict[str, bool]) -> None:
    replicas.update(replica_0=False, replica_1=False)
    assert dbrouter.read_alias() == "default"


def test_a_failed_replica_is_left_alone_for_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def down(alias: str) -> bool:
        calls.append(alias)
        raise OSError("connection refused")

    assert dbrouter.healthy("replica_0", down) is False
    assert dbrouter.healthy("replica_0", down) is False
    assert calls == ["replica_0"], "a failed replica was asked again at once"
    monkeypatch.setattr(dbrouter, "FAILED_SECONDS", 0.0)
    time.sleep(0.01)
    dbrouter.healthy("replica_0", down)
    assert calls == ["replica_0", "replica_0"]


def test_a_request_that_wrote_reads_from_the_writer(replicas: dict[str, bool]) -> None:
    router = dbrouter.ReplicaRouter()
    token = dbrouter.request_wrote.set(False)
    try:
        assert router.db_for_read(object) != "default"
        assert router.db_for_write(object) == "default"
        assert router.db_for_read(object) == "default"
    finally:
        dbrouter.request_wrote.reset(token)


def respond_with_read_alias(request: HttpRequest) -> HttpResponse:
    return HttpResponse(dbrouter.read_alias())


def test_after_a_post_the_clients_reads_go_to_the_writer(
    replicas: dict[str, bool], settings: object
) -> None:
    middleware = dbrouter.read_your_writes(respond_with_read_alias)
    factory = RequestFactory()
    posted = middleware(factory.post("/posts/new/"))
    assert posted.content == b"default"
    pin = posted.cookies[dbrouter.PIN_COOKIE]
    assert float(pin.value) > time.time()
    assert pin["httponly"]

    pinned = factory.get("/")
    pinned.COOKIES[dbrouter.PIN_COOKIE] = pin.value
    answer = middleware(pinned)
    assert answer.content == b"default"
    assert dbrouter.PIN_COOKIE not in answer.cookies, "a read must not extend the window"

    assert middleware(factory.get("/")).content.startswith(b"replica_")
    expired = factory.get("/")
    expired.COOKIES[dbrouter.PIN_COOKIE] = f"{time.time() - 1:.1f}"
    assert middleware(expired).content.startswith(b"replica_")
    forged = factory.get("/")
    forged.COOKIES[dbrouter.PIN_COOKIE] = "not-a-time"
    assert middleware(forged).content.startswith(b"replica_")


def test_without_replicas_no_pin_cookie_is_set() -> None:
    middleware = dbrouter.read_your_writes(respond_with_read_alias)
    response = middleware(RequestFactory().post("/posts/new/"))
    assert response.content == b"default"
    assert dbrouter.PIN_COOKIE not in response.cookies


class LostConnection:
    """What Django's connection says after a database error on it."""

    errors_occurred = True


def replica_dies_under_the_first_read(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[dbrouter.read_your_writes, list[str]]:
    """A middleware around a view whose read on a replica fails the way a dead server does
    (Django calls process_exception, then answers 500); the list records where each run read."""
    monkeypatch.setattr(
        dbrouter, "connections", {"replica_0": LostConnection(), "replica_1": LostConnection()}
    )
    reads: list[str] = []

    def view(request: HttpRequest) -> HttpResponse:
        alias = dbrouter.read_alias()
        reads.append(alias)
        if alias == "default":
            return HttpResponse(alias)
        middleware.process_exception(request, OperationalError(2013, "Lost connection"))
        return HttpResponse(status=500)

    middleware = dbrouter.read_your_writes(view)
    return middleware, reads


def test_a_read_that_fails_on_a_replica_runs_again_on_the_writer(
    replicas: dict[str, bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    middleware, reads = replica_dies_under_the_first_read(monkeypatch)
    response = middleware(RequestFactory().get("/"))
    assert (response.status_code, response.content) == (200, b"default")
    assert reads[0].startswith("replica_") and reads[1:] == ["default"]
    assert dbrouter.PIN_COOKIE not in response.cookies
    # The replica that failed is left alone; the other one still serves reads.
    assert {dbrouter.read_alias() for _ in range(20)} == {"replica_0", "replica_1"} - {reads[0]}


def test_a_database_error_elsewhere_does_not_blame_the_replica(
    replicas: dict[str, bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Healthy:
        errors_occurred = False

    monkeypatch.setattr(dbrouter, "connections", {"replica_0": Healthy(), "replica_1": Healthy()})
    calls = []

    def view(request: HttpRequest) -> HttpResponse:
        calls.append(dbrouter.read_alias())
        middleware.process_exception(request, OperationalError(1205, "Lock wait timeout"))
        return HttpResponse(status=500)

    middleware = dbrouter.read_your_writes(view)
    assert middleware(RequestFactory().get("/")).status_code == 500
    assert len(calls) == 1


def mysql_env(**more: str) -> dict[str, str]:
    return {
        "DJANGO_DB_ENGINE": "mysql",
        "DJANGO_DB_NAME": "app",
        "DJANGO_DB_USER": "app",
        "DJANGO_DB_PASSWORD": "secret-secret-secret",
        "DJANGO_DB_HOST": "10.0.0.100",
        **more,
    }


def test_each_database_server_gets_a_read_alias(tmp_path: object) -> None:
    found = env.databases(mysql_env(DJANGO_DB_REPLICAS="10.0.0.21, 10.0.0.22"), tmp_path)
    assert [(a, d["HOST"]) for a, d in found.items()] == [
        ("default", "10.0.0.100"),
        ("replica_0", "10.0.0.21"),
        ("replica_1", "10.0.0.22"),
    ]
    assert found["replica_0"]["USER"] == "app"
    assert found["replica_0"]["OPTIONS"]["connect_timeout"] == 1
    assert found["replica_0"]["OPTIONS"]["read_timeout"] == env.REPLICA_IO_TIMEOUT
    assert "read_timeout" not in found["default"]["OPTIONS"], "migrations may take long"
    assert found["default"]["OPTIONS"]["connect_timeout"] == 5
    assert list(env.databases(mysql_env(), tmp_path)) == ["default"]


@pytest.mark.parametrize("value", ["10.0.0.21,,10.0.0.22", "10.0.0.21:3306", "a b"])
def test_a_malformed_replica_list_is_refused(value: str, tmp_path: object) -> None:
    with pytest.raises(ImproperlyConfigured, match="DJANGO_DB_REPLICAS is"):
        env.databases(mysql_env(DJANGO_DB_REPLICAS=value), tmp_path)
