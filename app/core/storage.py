"""Object-store backends whose URLs point at the balancer, not at the store.

Browsers never talk to the object store: Apache proxies /media/ and /static/ to
<store>/<bucket>/media/ and <store>/<bucket>/static/, and the bucket allows anonymous GET.
So a file's URL is MEDIA_URL or STATIC_URL plus its name below the prefix: relative, unsigned,
the same on every application server.
"""

from __future__ import annotations

from urllib.parse import urljoin

from django.conf import settings
from django.utils.encoding import filepath_to_uri
from storages.backends.gcloud import GoogleCloudStorage
from storages.backends.s3 import S3Storage
from storages.utils import clean_name


def balancer_url(base: str, name: str) -> str:
    return urljoin(base, filepath_to_uri(clean_name(name)).lstrip("/"))


class MediaS3Storage(S3Storage):
    location = "media"
    querystring_auth = False
    default_acl = None
    # Uploads get unique names anyway; never overwrite someone else's object.
    file_overwrite = False
    # A name is never reused for other content, so browsers may keep an image for good.
    object_parameters = {"CacheControl": "public, max-age=31536000, immutable"}

    def url(self, name, parameters=None, expire=None, http_method=None):
        return balancer_url(settings.MEDIA_URL, name)


class StaticS3Storage(S3Storage):
    location = "static"
    querystring_auth = False
    default_acl = None
    file_overwrite = True

    def url(self, name, parameters=None, expire=None, http_method=None):
        return balancer_url(settings.STATIC_URL, name)


class MediaGCSStorage(GoogleCloudStorage):
    location = "media"
    querystring_auth = False
    file_overwrite = False

    def url(self, name, parameters=None):
        return balancer_url(settings.MEDIA_URL, name)


class StaticGCSStorage(GoogleCloudStorage):
    location = "static"
    querystring_auth = False
    file_overwrite = True

    def url(self, name, parameters=None):
        return balancer_url(settings.STATIC_URL, name)
