"""Django settings: every value comes from the environment (see app/README.md for the table).

Production renders an environment file through Ansible; nothing here reads local state, so any
number of identical application servers can run behind the balancer.
"""

import os
from pathlib import Path

from config import env, release

E = os.environ
BASE_DIR = Path(__file__).resolve().parent.parent
# Shown on every response (X-App-Release) and page footer; names the static files' manifest.
RELEASE = release.read(BASE_DIR)

SECRET_KEY = env.env_str(E, "DJANGO_SECRET_KEY")
DEBUG = env.env_bool(E, "DJANGO_DEBUG", False)
ALLOWED_HOSTS = env.env_list(E, "DJANGO_ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env.env_list(E, "DJANGO_CSRF_TRUSTED_ORIGINS")

# The balancer sets X-Forwarded-Proto and strips any the client sent.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = False

HTTPS = env.env_bool(E, "DJANGO_HTTPS", True)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
# Off unless asked for: the installer's balancer sends HSTS itself, and only once the site has
# real names and a trusted certificate; pinned to a lab's self-signed HTTPS, browsers get stuck.
SECURE_HSTS_SECONDS = env.env_int(E, "DJANGO_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
# check --deploy warns (W004) when the app sends no HSTS; with 0 that is the balancer's job.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_SECONDS else ["security.W004"]
# Probes talk plain HTTP to each member; core.middleware answers them first anyway.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "core",
    "health",
    "accounts",
    "feed",
    "guestbook",
]

MIDDLEWARE = [
    # Outermost, so even health answers and errors carry X-Served-By.
    "core.middleware.served_by",
    # Before host validation and the SSL redirect: balancer probes use the member's IP over HTTP.
    "health.middleware.health_probes",
    # Before anything reads the database: where this request's reads go.
    "core.dbrouter.read_your_writes",
    "django.middleware.security.SecurityMiddleware",
    # Refuse oversized bodies before anything reads them.
    "core.middleware.upload_limit",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.context_processors.served_by",
            ],
        },
    },
]

DATABASES = env.databases(E, BASE_DIR)
# Reads from a replica when one is healthy; a client's reads follow its writes for a while.
DATABASE_ROUTERS = ["core.dbrouter.ReplicaRouter"]
READ_YOUR_WRITES_SECONDS = env.env_int(E, "DJANGO_DB_READ_YOUR_WRITES_SECONDS", 5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = env.caches(E)
# Write-through to the database, read from Redis: a Redis restart logs nobody out, and a logout
# during a Redis outage stays final (accounts.sessions, accounts.revocation).
SESSION_ENGINE = "accounts.sessions"
SESSION_CACHE_ALIAS = "sessions"

# POSTs per client address, counted in the cache and so shared by every server (core.ratelimit).
RATE_LIMITS = env.rate_limits(E)
# The balancers: only their X-Forwarded-For names the client (core.addresses).
TRUSTED_PROXIES = env.trusted_proxies(E)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "feed:index"
LOGOUT_REDIRECT_URL = "feed:index"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STORAGE_KIND = env.env_choice(E, "DJANGO_STORAGE", ("filesystem", "s3", "gcs"), "filesystem")
STORAGES = env.storages(E, BASE_DIR)
MEDIA_URL = env.url_prefix(env.env_str(E, "DJANGO_MEDIA_URL", "/media/"))
STATIC_URL = env.url_prefix(env.env_str(E, "DJANGO_STATIC_URL", "/static/"))
MEDIA_ROOT = env.media_root(E, BASE_DIR)
STATIC_ROOT = env.static_root(E, BASE_DIR)

MAX_UPLOAD_MB = env.env_int(E, "DJANGO_MAX_UPLOAD_MB", 10)
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
# Width × height an upload may declare: decoding allocates about 4 bytes per pixel.
MAX_IMAGE_PIXELS = env.max_image_pixels(E)
# Room for the other form fields and multipart framing around one image.
MAX_REQUEST_BYTES = MAX_UPLOAD_BYTES + 1024 * 1024
# Non-file form fields; files are limited by core.middleware.upload_limit and the forms.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

LOGGING = env.logging_config(E)
