"""Middleware every response goes through."""

from __future__ import annotations

import socket
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

HOSTNAME = socket.gethostname()

Handler = Callable[[HttpRequest], HttpResponse]


def served_by(get_response: Handler) -> Handler:
    """Name the application server and its release on every response, so balancing and rolling
    deploys can be seen and tested."""

    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        response["X-Served-By"] = HOSTNAME
        response["X-App-Release"] = settings.RELEASE
        return response

    return middleware


def upload_limit(get_response: Handler) -> Handler:
    """Answer 413 to a request body larger than one maximal upload, before anything reads it.

    Uploads just over the limit still reach the forms, which explain the limit on the page.
    """

    def middleware(request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.MAX_REQUEST_BYTES:
            body = render_to_string(
                "core/413.html", {"max_upload_mb": settings.MAX_UPLOAD_MB}, request=None
            )
            return HttpResponse(body, status=413)
        return get_response(request)

    return middleware
