import re

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

urlpatterns = [
    path("", include("feed.urls")),
    path("accounts/", include("accounts.urls")),
    path("guestbook/", include("guestbook.urls")),
    path("admin/", admin.site.urls),
]


def local_files(url: str, root: str) -> list:
    prefix = re.escape(url.lstrip("/"))
    return [re_path(rf"^{prefix}(?P<path>.*)$", serve, {"document_root": root})]


if settings.STORAGE_KIND == "filesystem" and settings.MEDIA_URL.startswith("/"):
    # Single-server and development mode: no object store or balancer serves files, so we do.
    # (With DEBUG on, runserver serves /static/ from the apps itself.)
    urlpatterns += local_files(settings.MEDIA_URL, settings.MEDIA_ROOT)
    if not settings.DEBUG and settings.STATIC_URL.startswith("/"):
        urlpatterns += local_files(settings.STATIC_URL, settings.STATIC_ROOT)
