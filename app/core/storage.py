"""Object-store backends whose URLs point at the balancer, not at the store.

Browsers never talk to the object store: Apache proxies /media/ and /static/ to
<store>/<bucket>/media/ and <store>/<bucket>/static/, and the bucket allows anonymous GET.
So a file's URL is MEDIA_URL or STATIC_URL plus its name below the prefix: relative, unsigned,
the same on every application server.
"""

from __future__ import annotations

from urllib.parse import urljoin

from django.conf import settings
from django.contrib.staticfiles.storage import ManifestFilesMixin
from django.utils.encoding import filepath_to_uri
from google.auth.credentials import AnonymousCredentials
from google.cloud.storage import Client
from storages.backends.gcloud import GoogleCloudStorage
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

# Media names are never reused for other content, so browsers may keep an image for good.
IMMUTABLE = "public, max-age=31536000, immutable"


def balancer_url(base: str, name: str) -> str:
    return urljoin(base, filepath_to_uri(clean_name(name)).lstrip("/"))


class MediaS3Storage(S3Storage):
    location = "media"
    querystring_auth = False
    default_acl = None
    # Uploads get unique names anyway; never overwrite someone else's object.
    file_overwrite = False
    object_parameters = {"CacheControl": IMMUTABLE}

    def url(self, name, parameters=None, expire=None, http_method=None):
        return balancer_url(settings.MEDIA_URL, name)


class ReleaseManifest(ManifestFilesMixin):
    """Static files under hashed names (core/app.3f2a0b1c9d8e.css), listed in a manifest of this
    release's own, staticfiles-<release>.json.

    During a rolling deploy two releases serve at once from one bucket: collectstatic of the new
    release adds its hashed files and its manifest beside the old ones and changes none of them,
    so each release's pages keep finding their files. A release's files never change, so a
    release whose manifest exists already post-processes nothing (a re-run rewrites no file
    that pages are being served from). Without a manifest (collectstatic not run yet), URLs fall
    back to the unhashed names, which collectstatic uploads too.
    """

    manifest_strict = False

    @property
    def manifest_name(self) -> str:  # type: ignore[override]
        return f"staticfiles-{settings.RELEASE}.json"

    def stored_name(self, name):
        hashed = self.hashed_files.get(self.hash_key(self.clean_name(name)))
        return name if hashed is None else hashed

    def post_process(self, paths, dry_run=False, **options):
        if not dry_run and self.manifest_storage.exists(self.manifest_name):
            self.hashed_files, self.manifest_hash = self.load_manifest()
            return
        yield from super().post_process(paths, dry_run=dry_run, **options)


class BalancerStaticS3Storage(S3Storage):
    location = "static"
    querystring_auth = False
    default_acl = None
    file_overwrite = True

    def url(self, name, parameters=None, expire=None, http_method=None):
        return balancer_url(settings.STATIC_URL, name)


class StaticS3Storage(ReleaseManifest, BalancerStaticS3Storage):
    pass


class BalancerGCSStorage(GoogleCloudStorage):
    """Google Cloud Storage, or with emulator_url set a GCS emulator (tests and labs)."""

    querystring_auth = False

    def get_default_settings(self):
        return {**super().get_default_settings(), "emulator_url": ""}

    @property
    def client(self):
        if self._client is None and self.emulator_url:
            # An emulator checks no token and has no token service, and with the real key
            # google-auth would fetch tokens from Google. No STORAGE_EMULATOR_HOST needed.
            self._client = Client(
                project=self.project_id,
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": self.emulator_url},
            )
        return super().client


class MediaGCSStorage(BalancerGCSStorage):
    location = "media"
    file_overwrite = False
    object_parameters = {"cache_control": IMMUTABLE}

    def url(self, name, parameters=None):
        return balancer_url(settings.MEDIA_URL, name)


class BalancerStaticGCSStorage(BalancerGCSStorage):
    location = "static"
    file_overwrite = True

    def url(self, name, parameters=None):
        return balancer_url(settings.STATIC_URL, name)


class StaticGCSStorage(ReleaseManifest, BalancerStaticGCSStorage):
    pass
