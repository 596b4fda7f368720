"""Settings for Gridfleet, all read from the environment in this one module.

With no environment at all the server runs "embedded": SQLite under var/, an in-memory channel
layer and Celery tasks executed eagerly in-process, so `make demo` needs no other service.
Setting DATABASE_URL / REDIS_URL switches to PostgreSQL, channels-redis and real Celery workers.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

# Lets classes such as ModelAdmin[Gateway] be subscripted at run time, as the type stubs expect.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value is None or not value.strip() else int(value)


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return default if value is None or not value.strip() else float(value)


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


INSECURE_DEFAULT_SECRET_KEY = "gridfleet-insecure-development-key-do-not-use-in-production"  # noqa: S105
MIN_SECRET_KEY_LENGTH = 32

DEBUG = env_bool("DEBUG", default=True)
SECRET_KEY = os.environ.get("SECRET_KEY", INSECURE_DEFAULT_SECRET_KEY)
# "production" is declared explicitly so a forgotten variable can never silently run a
# production fleet with development defaults.
GRIDFLEET_ENV = os.environ.get("GRIDFLEET_ENV", "development")
if GRIDFLEET_ENV == "production":
    if DEBUG:
        raise ImproperlyConfigured("GRIDFLEET_ENV=production refuses to start with DEBUG on; set DEBUG=0.")
    if SECRET_KEY == INSECURE_DEFAULT_SECRET_KEY or len(SECRET_KEY) < MIN_SECRET_KEY_LENGTH:
        raise ImproperlyConfigured(
            "GRIDFLEET_ENV=production refuses the default SECRET_KEY; set SECRET_KEY to 32+ random characters."
        )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# A refused form explains itself; over plain HTTP in production it says TLS is required.
CSRF_FAILURE_VIEW = "fleet.accounts.views.csrf_failure"
# Addresses of reverse proxies whose X-Forwarded-For (and client-certificate headers) we believe.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES")

GRIDFLEET_VAR_DIR = Path(os.environ.get("GRIDFLEET_VAR_DIR", BASE_DIR / "var"))
GRIDFLEET_VAR_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "channels",
    "fleet.accounts",
    "fleet.audit",
    "fleet.inventory",
    "fleet.demo",
    "fleet.monitoring",
    "fleet.uplink",
    "fleet.remoteaccess",
    "pki",
    "firmware",
    "firmware.deployments",
    "fleet.csip",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "fleet.urls"
ASGI_APPLICATION = "fleet.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "fleet.core.navigation.navigation",
            ],
        },
    },
]

DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(GRIDFLEET_VAR_DIR / "gridfleet.sqlite3"),
            # WAL plus a busy timeout lets the server and a demo fleet write concurrently.
            "OPTIONS": {
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
# The channel layer's Redis connections, set explicitly (fleet/core/channel_layer.py says why): the socket
# timeout must exceed the layer's 5 s blocking wait, and beyond REDIS_MAX_CONNECTIONS per ASGI process
# a command waits up to REDIS_POOL_TIMEOUT seconds for a free connection instead of failing.
REDIS_SOCKET_TIMEOUT = env_float("REDIS_SOCKET_TIMEOUT", 30)
REDIS_MAX_CONNECTIONS = env_int("REDIS_MAX_CONNECTIONS", 200)
REDIS_POOL_TIMEOUT = env_float("REDIS_POOL_TIMEOUT", 20)
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "fleet.core.channel_layer.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": REDIS_SOCKET_TIMEOUT,
                        "socket_connect_timeout": 5,
                        "socket_keepalive": True,
                        "health_check_interval": 30,
                        "max_connections": REDIS_MAX_CONNECTIONS,
                        "pool_timeout": REDIS_POOL_TIMEOUT,
                    }
                ]
            },
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: eager (in-process) unless a broker is configured.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", REDIS_URL or None)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    # Identity: CRLs are re-signed long before their nextUpdate; spent tokens and nonces are purged.
    "pki-publish-crl": {"task": "pki.publish_crl", "schedule": timedelta(hours=1)},
    "pki-purge-expired-credentials": {"task": "pki.purge_expired_credentials", "schedule": timedelta(hours=1)},
    # Monitoring: offline detection, shelf expiry, grouped notifications, partitions and retention.
    "monitoring-detect-offline-gateways": {
        "task": "monitoring.detect_offline_gateways",
        "schedule": timedelta(seconds=30),
    },
    "monitoring-expire-shelves": {"task": "monitoring.expire_shelves", "schedule": timedelta(seconds=30)},
    # Remote access: sessions past their end, also when no WebSocket end is there to notice.
    "remoteaccess-expire-sessions": {"task": "remoteaccess.expire_sessions", "schedule": timedelta(seconds=30)},
    "monitoring-flush-notifications": {"task": "monitoring.flush_notifications", "schedule": timedelta(seconds=10)},
    "monitoring-maintain-partitions": {"task": "monitoring.maintain_partitions", "schedule": timedelta(hours=6)},
    # Signed distribution: publish pending changes; re-sign roles before they expire.
    "firmware-publish-repository": {"task": "firmware.publish_repository", "schedule": timedelta(seconds=15)},
    "firmware-resign-repository": {"task": "firmware.resign_repository", "schedule": timedelta(hours=1)},
    # Rollouts: timeouts, phase advance, thresholds, new group members, rate-limited assignments.
    "deployments-run-rollouts": {"task": "deployments.run_rollouts", "schedule": timedelta(seconds=30)},
}
# In the embedded default there is no beat process: the ASGI server runs the same schedule on a
# timer (fleet.core.scheduler). Disable it for tests and for production, where beat runs.
GRIDFLEET_INPROCESS_SCHEDULER = env_bool("GRIDFLEET_INPROCESS_SCHEDULER", default=not REDIS_URL)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "fleet" / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = GRIDFLEET_VAR_DIR / "media"
# Without a collectstatic run (the demo, tests) WhiteNoise serves straight from the app folders.
WHITENOISE_USE_FINDERS = DEBUG

# Uploads stream to disk above this size; request bodies other than uploads are capped.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first, so an unauthenticated API call is answered 401 with a WWW-Authenticate header.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["fleet.accounts.permissions.ReadCapability"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "fleet.core.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {"anon": "60/min"},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Gridfleet API",
    "DESCRIPTION": "Fleet management for DER edge gateways: inventory, PKI, signed updates, rollouts, alarms.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["fleet.core.api.only_user_api_endpoints"],
    # Choice sets whose field names collide across apps get explicit component names.
    "ENUM_NAME_OVERRIDES": {
        "DeploymentActionStateEnum": "firmware.deployments.models.ActionState",
        "ArtifactTypeEnum": "firmware.models.ArtifactType",
        "AlarmStateEnum": "fleet.monitoring.lifecycle.AlarmState",
        "AlarmSeverityEnum": "fleet.monitoring.lifecycle.Severity",
    },
    # Swagger UI assets are served locally: operators' networks often have no CDN access.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "gridfleet@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # python-tuf logs each key that has not signed (yet) at INFO: noise while offline signatures are collected.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "tuf": {"level": "WARNING"}},
}

# Where gateways fetch /tuf/ (this server or a CDN in front of it); empty: the URL of the request.
GRIDFLEET_TUF_PUBLIC_URL = os.environ.get("GRIDFLEET_TUF_PUBLIC_URL", "")
if GRIDFLEET_TUF_PUBLIC_URL and not GRIDFLEET_TUF_PUBLIC_URL.endswith("/tuf/"):
    raise ImproperlyConfigured(
        f"GRIDFLEET_TUF_PUBLIC_URL must end in /tuf/ (gateways append metadata/ and targets/ to it); "
        f"got {GRIDFLEET_TUF_PUBLIC_URL!r}, e.g. https://fleet.example.com/tuf/."
    )
# Internal nginx location mapped to the file storage (deploy/nginx/gridfleet.conf): when set, Django
# authorizes a TUF target and answers X-Accel-Redirect; nginx sends the bytes. Empty: Django streams them.
GRIDFLEET_TUF_ACCEL_REDIRECT = os.environ.get("GRIDFLEET_TUF_ACCEL_REDIRECT", "")
# How often gateways check the TUF repository for updates (sent to agents in the uplink welcome).
GRIDFLEET_UPDATE_POLL_SECONDS = env_int("GRIDFLEET_UPDATE_POLL_SECONDS", 300)
# How long a gateway may stay silent before it counts as offline.
GATEWAY_OFFLINE_AFTER = timedelta(seconds=env_int("GATEWAY_OFFLINE_AFTER_SECONDS", 600))
# Largest CSV accepted by bulk import.
INVENTORY_IMPORT_MAX_ROWS = env_int("INVENTORY_IMPORT_MAX_ROWS", 20000)

# PKI (docs/security.md). The KEK encrypts the CA private keys: required unless DEBUG, where
# pki.conf.kek() generates a development one under GRIDFLEET_VAR_DIR.
GRIDFLEET_PKI_KEK = os.environ.get("GRIDFLEET_PKI_KEK", "")
GRIDFLEET_PKI_DEVICE_CERT_DAYS = env_int("GRIDFLEET_PKI_DEVICE_CERT_DAYS", 365)
GRIDFLEET_PKI_ROOT_CA_DAYS = env_int("GRIDFLEET_PKI_ROOT_CA_DAYS", 20 * 365)
GRIDFLEET_PKI_ISSUING_CA_DAYS = env_int("GRIDFLEET_PKI_ISSUING_CA_DAYS", 10 * 365)
# A CRL is re-signed every hour; this is how long each one stays valid (its nextUpdate).
GRIDFLEET_PKI_CRL_VALIDITY_HOURS = env_int("GRIDFLEET_PKI_CRL_VALIDITY_HOURS", 24)
GRIDFLEET_PKI_ENROLLMENT_TOKEN_HOURS = env_int("GRIDFLEET_PKI_ENROLLMENT_TOKEN_HOURS", 7 * 24)
GRIDFLEET_PKI_REQUIRE_ACCEPTANCE = env_bool("GRIDFLEET_PKI_REQUIRE_ACCEPTANCE", default=False)
GRIDFLEET_PKI_ACCESS_TOKEN_TTL = env_int("GRIDFLEET_PKI_ACCESS_TOKEN_TTL", 600)
GRIDFLEET_PKI_AUTH_MAX_SKEW = env_int("GRIDFLEET_PKI_AUTH_MAX_SKEW", 120)
# Public base URL of this server (https://fleet.example.com); when set, issued certificates name their CRL URL.
GRIDFLEET_PKI_PUBLIC_URL = os.environ.get("GRIDFLEET_PKI_PUBLIC_URL", "")
# Optional mutual TLS: header in which a TLS terminator in TRUSTED_PROXIES passes the verified
# client certificate (URL-encoded PEM, nginx `$ssl_client_escaped_cert`); empty disables it.
GRIDFLEET_PKI_CLIENT_CERT_HEADER = os.environ.get("GRIDFLEET_PKI_CLIENT_CERT_HEADER", "")

# Signed updates (docs/tuf-repository.md). Where the TUF repository (metadata/, staging/, keys/,
# index.json) lives; empty: GRIDFLEET_VAR_DIR/tuf (firmware.conf.tuf_dir()).
GRIDFLEET_TUF_DIR = os.environ.get("GRIDFLEET_TUF_DIR", "")
# Passphrase of the encrypted online key files; empty: a random one kept next to the keys.
GRIDFLEET_TUF_KEY_PASSPHRASE = os.environ.get("GRIDFLEET_TUF_KEY_PASSPHRASE", "")
# JSON {"timestamp"|"snapshot"|"bins": {"uri": "gcpkms:...", "public_key": {...}}}: online keys
# held by a KMS/HSM instead of local encrypted files.
GRIDFLEET_TUF_ONLINE_KEYS = os.environ.get("GRIDFLEET_TUF_ONLINE_KEYS", "")
# Base URL gateways use for /tuf/ (e.g. a CDN); empty: the URL of the request.
GRIDFLEET_TUF_PUBLIC_URL = os.environ.get("GRIDFLEET_TUF_PUBLIC_URL", "")
# Largest accepted artifact upload.
GRIDFLEET_ARTIFACT_MAX_BYTES = env_int("GRIDFLEET_ARTIFACT_MAX_BYTES", 2 * 1024**3)

# The CSIP head-end (fleet/csip, docs/utility-link.md): where it listens for IEEE 2030.5 clients
# (mutual TLS, served by `manage.py csip_headend` or inside the demo), the URL gateways are told,
# and the pollRate / postRate it hands out (seconds; CSIP utilities often use 300).
GRIDFLEET_CSIP_HOST = os.environ.get("GRIDFLEET_CSIP_HOST", "127.0.0.1")
GRIDFLEET_CSIP_PORT = env_int("GRIDFLEET_CSIP_PORT", 8443)
GRIDFLEET_CSIP_PUBLIC_URL = os.environ.get("GRIDFLEET_CSIP_PUBLIC_URL", "")
GRIDFLEET_CSIP_POLL_RATE = env_int("GRIDFLEET_CSIP_POLL_RATE", 300)
GRIDFLEET_CSIP_POST_RATE = env_int("GRIDFLEET_CSIP_POST_RATE", 300)
# `make demo` schedules a curtailment this long after it starts (fleet/demo).
GRIDFLEET_DEMO_CURTAILMENT_AFTER_SECONDS = env_int("GRIDFLEET_DEMO_CURTAILMENT_AFTER_SECONDS", 180)
