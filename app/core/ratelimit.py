"""Per-client rate limits on POSTs, counted in the cache so every server shares the counts.

A fixed window per scope: the first POST of a window creates a counter that expires with it, and
every POST increments it. When the cache is down the limits are off (fail open): a Redis outage
must not lock everybody out of logging in.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from core.addresses import client_address

logger = logging.getLogger(__name__)

View = Callable[..., HttpResponse]


def bucket(address: str) -> str:
    """Whom to count: an IPv4 address, or an IPv6 /64 (one client usually holds a whole /64)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address or "unknown"
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address) + "/64"
    return str(ip)


def hit(key: str, seconds: int) -> int | None:
    """Count one POST in the window's counter; the new count, or None if the cache failed."""
    cache = caches["default"]
    try:
        client = getattr(cache, "client", None)
        if client is not None and hasattr(client, "get_client"):
            # Straight to Redis: SET NX EX then INCR in one MULTI/EXEC. django-redis' incr() is
            # a Lua script, which the app's Redis ACL does not allow.
            pipe = client.get_client(write=True).pipeline(transaction=True)
            full_key = cache.make_and_validate_key(key)
            pipe.set(full_key, 0, ex=seconds, nx=True)
            pipe.incr(full_key)
            return int(pipe.execute()[1])
        cache.add(key, 0, seconds)
        return cache.incr(key)
    except Exception as exc:  # noqa: BLE001 - fail open, whatever the cache raised
        logger.warning("Rate limit not checked, the cache failed (%s: %s)", type(exc).__name__, exc)
        return None


def too_many(request: HttpRequest, scope: str) -> HttpResponse | None:
    """The 429 answer when this POST is one too many for the scope, else None."""
    limit = settings.RATE_LIMITS.get(scope)
    if limit is None:
        return None
    count, seconds = limit
    now = time.time()
    window = int(now // seconds)
    who = bucket(client_address(request))
    # The window's length is part of the key: a changed limit starts new counters.
    current = hit(f"ratelimit:{scope}:{who}:{seconds}:{window}", seconds + 1)
    if current is None or current <= count:
        return None
    retry_after = max(1, math.ceil((window + 1) * seconds - now))
    logger.warning("Rate limit %s (%d/%ds) reached by %s", scope, count, seconds, who)
    body = render_to_string("core/429.html", {"retry_after": retry_after}, request=None)
    response = HttpResponse(body, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def rate_limit(scope: str) -> Callable[[View], View]:
    """Limit a view's POSTs per client address by settings.RATE_LIMITS[scope]."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method == "POST":
                refused = too_many(request, scope)
                if refused is not None:
                    return refused
            return view(request, *args, **kwargs)

        return wrapped

    return decorate
