from django.conf import settings
from django.http import HttpRequest

from core.middleware import HOSTNAME


def served_by(request: HttpRequest) -> dict[str, object]:
    return {
        "served_by": HOSTNAME,
        "release": settings.RELEASE,
        "max_upload_mb": settings.MAX_UPLOAD_MB,
    }
