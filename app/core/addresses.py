"""The client's address, as far as this server can know it."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def normalized(address: str) -> str | None:
    """The canonical text of an IP address (IPv6 compressed), or None if it is not one."""
    try:
        return str(ipaddress.ip_address(address.strip()))
    except ValueError:
        return None


def client_address(request: HttpRequest) -> str:
    """REMOTE_ADDR, or behind a trusted balancer the address that balancer saw.

    Apache's mod_proxy appends the address of whoever connected to it to X-Forwarded-For, so the
    right-most entry is the one a trusted balancer wrote; anything left of it came from the
    client and may be forged. From any other peer the header is ignored altogether.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    peer = normalized(remote)
    if peer is not None and peer in settings.TRUSTED_PROXIES:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1]
        client = normalized(forwarded)
        if client is not None:
            return client
    return peer or remote
