"""Answer the balancer's probes before host validation, the SSL redirect and sessions.

mod_proxy_hcheck probes each member by its IP over plain HTTP; answering here means no
ALLOWED_HOSTS entry per member address is needed and a probe never gets a 301 or a 400.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from health.checks import database_reads, run_checks

Handler = Callable[[HttpRequest], HttpResponse]

HEALTHZ = {"/healthz", "/healthz/"}
READYZ = {"/readyz", "/readyz/"}


def healthz() -> HttpResponse:
    return HttpResponse("ok\n", content_type="text/plain")


def readyz() -> HttpResponse:
    checks = run_checks()
    ok = all(result == "ok" for result in checks.values())
    return JsonResponse(
        {"status": "ok" if ok else "fail", "checks": checks, "database_reads": database_reads()},
        status=200 if ok else 503,
    )


def health_probes(get_response: Handler) -> Handler:
    def middleware(request: HttpRequest) -> HttpResponse:
        if request.method in ("GET", "HEAD"):
            if request.path_info in HEALTHZ:
                response = healthz()
            elif request.path_info in READYZ:
                response = readyz()
            else:
                return get_response(request)
            response["Cache-Control"] = "no-store"
            return response
        return get_response(request)

    return middleware
