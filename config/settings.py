"""The one settings module. Every knob comes from the environment (12-factor).

With no environment at all the platform runs on embedded defaults: the embedded
PostgreSQL and Redis under ``var/`` (``config.embedded``), a real Celery broker on
that Redis, and Stripe calls to the local fake server that ``make demo`` starts.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from config import embedded
from config.logging import JSON_FORMATTER

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

# --- core -------------------------------------------------------------------

DEBUG = env.bool("DEBUG", default=True)
if DEBUG:
    SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-secret-key-change-me")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
else:
    # Production: refuse to start without real values.
    SECRET_KEY = env.str("SECRET_KEY")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")

TESTING = env.bool("TESTING", default=False)

INSTALLED_APPS = [
    # The back office's own site (config.admin.BackOfficeSite): OTP sign-in, work queues, customer page.
    "config.apps.BackOfficeAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "django_prometheus",
    "djstripe",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "pgtrigger",
    "pghistory",
    "accounts",
    "wallets",
    "catalog",
    "orders",
    "payments",
    "audit",
    "dashboard",
]
# The audit trail's triggers (audit/models.py) are installed after every migrate, not written into the
# tracked apps' migrations: the history lives in one app and no other app's migration graph moves.
PGTRIGGER_MIGRATIONS = False
PGTRIGGER_INSTALL_ON_MIGRATE = True

MIDDLEWARE = [
    "config.middleware.RequestIdMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    # Every write is recorded with who, from where, which request and (from the services) why.
    "config.audit.AuditContextMiddleware",
    # Resolves the JWT user itself: DRF authenticates only inside the view.
    "config.idempotency.IdempotencyMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last: turns a locked-out sign-in (django-axes) into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "accounts.User"

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
            ],
        },
    },
]

# --- database ---------------------------------------------------------------

# PostgreSQL is the only database. Without DATABASE_URL the embedded server under
# var/ serves (config.embedded starts it on first use).
DATABASE_URL = env.str("DATABASE_URL", default="") or embedded.postgres_url()
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] not in ("django.db.backends.postgresql", "config.postgres"):
    raise ImproperlyConfigured("DATABASE_URL must name a PostgreSQL database (postgres://…), the only one supported")
# A unix-socket directory arrives percent-encoded in the URL's host.
DATABASES["default"]["HOST"] = unquote(str(DATABASES["default"].get("HOST") or ""))
DATABASES["default"]["ENGINE"] = "config.postgres"  # Django's, without pattern-ops twin indexes
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Lets psycopg prepare statements at all; only config.db.prepared_cursor
# does (Django's own cursors bind client-side and never prepare). Behind a PgBouncer in
# transaction mode older than 1.21, DATABASE_PREPARED_STATEMENTS=false (docs/scaling.md).
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
DATABASES["default"]["OPTIONS"] = {"prepare_threshold": 5 if DATABASE_PREPARED_STATEMENTS else None}
DISABLE_SERVER_SIDE_CURSORS = not env.bool("DATABASE_SERVER_SIDE_CURSORS", default=DATABASE_PREPARED_STATEMENTS)
# DATABASE_POOL=true: Django's psycopg pool in each process (needs psycopg-pool; persistent connections off).
DATABASE_POOL = env.bool("DATABASE_POOL", default=False)
if DATABASE_POOL:
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=1),
        # One connection per request thread (config/serve.py's WEB_THREADS; GUNICORN_THREADS its earlier name).
        "max_size": env.int(
            "DATABASE_POOL_MAX_SIZE", default=env.int("WEB_THREADS", default=env.int("GUNICORN_THREADS", default=4))
        ),
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache, broker, tasks ---------------------------------------------------

# Redis serves the cache, the throttles and the Celery broker. Without REDIS_URL the
# embedded server under var/ serves (config.embedded starts it on first use).
REDIS_URL = env.str("REDIS_URL", default="") or embedded.redis_url()
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "pp",
        "OPTIONS": {
            "SOCKET_CONNECT_TIMEOUT": 2,
            "SOCKET_TIMEOUT": 2,
        },
    }
}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or embedded.celery_broker_url(REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# config is not an installed app, so autodiscovery would miss its tasks.
CELERY_IMPORTS = ("config.tasks",)
CELERY_BEAT_SCHEDULE = {
    "expire-order-reservations": {"task": "orders.tasks.expire_reservations", "schedule": 60.0},
    "retry-order-event-deliveries": {"task": "orders.tasks.deliveries_retry_due", "schedule": 60.0},
    "reconcile-processing-payments": {"task": "payments.tasks.reconcile_payments", "schedule": 300.0},
    "retry-failed-stripe-events": {"task": "payments.tasks.retry_failed_events", "schedule": 300.0},
    "reconcile-daily": {"task": "payments.tasks.reconcile_daily", "schedule": crontab(hour=3, minute=41)},
    "purge-idempotency-keys": {"task": "config.tasks.purge_idempotency_keys", "schedule": crontab(minute=17)},
    "release-merchant-income": {"task": "wallets.tasks.income_release_due", "schedule": 600.0},
    # The receipts' outbox: a kick after each paying commit queues the drain; this catches a lost kick.
    "send-due-receipts": {"task": "orders.tasks.receipts_send_due", "schedule": 60.0},
}

# --- auth -------------------------------------------------------------------

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "config.auth_backends.SignInThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Staff sign in with a TOTP code (admin and auth/token) unless DEBUG is on.
STAFF_OTP_REQUIRED = env.bool("STAFF_OTP_REQUIRED", default=not DEBUG)
# Failed sign-ins to the admin and the dashboard, per (user, address), the address found as the API's throttles do.
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = env.int("SIGN_IN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("SIGN_IN_COOLOFF_MINUTES", default=15))
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "config.throttling.client_address"
AXES_USERNAME_CALLABLE = "config.auth_backends.sign_in_username"
AXES_ENABLED = env.bool("SIGN_IN_THROTTLE", default=True)
AXES_VERBOSE = False
LOGIN_URL = "dashboard:login"
LOGIN_REDIRECT_URL = "dashboard:home"

THROTTLE_SCALE = env.float("THROTTLE_SCALE", default=1.0)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.CursorPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [],
    # Rates per scope; THROTTLE_SCALE multiplies them (0 turns throttling off).
    "DEFAULT_THROTTLE_RATES": {
        "auth_ip": "20/min",
        "auth_email": "10/min",
        "token_refresh": "30/min",
        "payments": "30/min",
        "refunds": "30/min",
        "withdrawals": "10/min",
        "licenses": "60/min",
        "user": "600/min",
        "anon": "300/min",
    },
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "COERCE_DECIMAL_TO_STRING": False,
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "sub",
    "AUTH_HEADER_TYPES": ("Bearer",),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Payments platform API",
    "DESCRIPTION": (
        "Wallets on a double-entry ledger, digital products, orders and card payments. "
        "Money is an integer in the currency's minor unit with a lowercase ISO-4217 currency beside it."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a "status" field: name each choice set after its model.
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "orders.models.OrderStatus",
        "PaymentStatusEnum": "payments.models.PaymentStatus",
        "RefundStatusEnum": "payments.models.RefundStatus",
        "DepositStatusEnum": "wallets.models.DepositStatus",
        "WithdrawalStatusEnum": "wallets.models.WithdrawalStatus",
        "GoodsStatusEnum": "orders.models.GoodsStatus",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.idempotency.document_idempotency_key",
    ],
}

# --- platform ---------------------------------------------------------------

PLATFORM_CURRENCY = env.str("PLATFORM_CURRENCY", default="usd").lower()
PLATFORM_FEE_BPS = env.int("PLATFORM_FEE_BPS", default=500)
MINIMUM_DEPOSIT = env.int("MINIMUM_DEPOSIT", default=100)
MAXIMUM_DEPOSIT = env.int("MAXIMUM_DEPOSIT", default=1_000_000)
MINIMUM_WITHDRAWAL = env.int("MINIMUM_WITHDRAWAL", default=500)
MAXIMUM_WITHDRAWAL = env.int("MAXIMUM_WITHDRAWAL", default=5_000_000)
MAXIMUM_PRODUCT_PRICE = env.int("MAXIMUM_PRODUCT_PRICE", default=100_000_000)
# Back office (issue 14): the largest Support refund, the amount needing two approvers, the withdrawal waits.
SUPPORT_REFUND_LIMIT = env.int("SUPPORT_REFUND_LIMIT", default=10_000)
FOUR_EYES_THRESHOLD = env.int("FOUR_EYES_THRESHOLD", default=100_000)
MERCHANT_AVAILABILITY_DAYS = env.int("MERCHANT_AVAILABILITY_DAYS", default=0)
DEPOSIT_COOLING_OFF_HOURS = env.int("DEPOSIT_COOLING_OFF_HOURS", default=0)
MAXIMUM_ORDER_QUANTITY = env.int("MAXIMUM_ORDER_QUANTITY", default=100)
ORDER_RESERVATION_MINUTES = env.int("ORDER_RESERVATION_MINUTES", default=15)
# Receipts due are sent by one drain per this many seconds and process (orders.services.notices); 0: at once.
RECEIPT_BATCH_SECONDS = env.float("RECEIPT_BATCH_SECONDS", default=1.0)
ORDER_EVENTS_URL = env.str("ORDER_EVENTS_URL", default="")
ORDER_EVENTS_SECRET = env.str("ORDER_EVENTS_SECRET", default="")
# /metrics answers only "Authorization: Bearer <METRICS_TOKEN>"; without a token, only while DEBUG is on (else 404).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Merchant webhook targets may be private addresses or use ports other than 80/443 (local receivers).
WEBHOOK_ALLOW_PRIVATE_TARGETS = env.bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", default=DEBUG)
IDEMPOTENCY_TTL = timedelta(hours=24)
CATALOG_CACHE_TTL = env.int("CATALOG_CACHE_TTL", default=60)

# --- email ------------------------------------------------------------------

# consolemail:// prints each message (the demo); smtp+tls://user:pass@host:587; filemail:///path writes files there.
EMAIL_URL = env.str("EMAIL_URL", default="consolemail://")
_email = env.email_url_config(EMAIL_URL)
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST") or "localhost"
EMAIL_PORT = _email.get("EMAIL_PORT") or 25
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS"))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL"))
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
if EMAIL_URL.startswith("filemail:"):
    # django-environ drops the path's leading slash: filemail:///var/mail is /var/mail.
    EMAIL_FILE_PATH = "/" + EMAIL_URL.split("://", 1)[1].lstrip("/")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Payments <no-reply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Where the platform is reached from outside: the links in emails (download links) start with it.
PUBLIC_URL = env.str("PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")

# --- product files -----------------------------------------------------------

MEDIA_ROOT = env.str("MEDIA_ROOT", default=str(VAR_DIR / "media"))
MEDIA_URL = "media/"  # never served as such: files go out through GET downloads/{token}
# Where product files are kept (STORAGES["product_files"], docs/goods.md): "local" (MEDIA_ROOT), "s3" (a
# private bucket, credentials from the environment or boto3's own chain), or a Django storage class path.
PRODUCT_FILE_STORAGE = env.str("PRODUCT_FILE_STORAGE", default="local")
if PRODUCT_FILE_STORAGE == "local":
    _product_files: dict[str, object] = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
elif PRODUCT_FILE_STORAGE == "s3":
    _s3_options: dict[str, object] = {
        "bucket_name": env.str("PRODUCT_FILE_S3_BUCKET"),
        "endpoint_url": env.str("PRODUCT_FILE_S3_ENDPOINT_URL", default="") or None,
        "region_name": env.str("PRODUCT_FILE_S3_REGION", default="") or None,
        "location": env.str("PRODUCT_FILE_S3_PREFIX", default=""),
        "querystring_auth": True,  # url() signs: downloads redirect to a URL good for 60 s
        "file_overwrite": False,
    }
    _s3_keys = {
        "access_key": env.str("PRODUCT_FILE_S3_ACCESS_KEY_ID", default=""),
        "secret_key": env.str("PRODUCT_FILE_S3_SECRET_ACCESS_KEY", default=""),
    }
    _s3_options.update({option: value for option, value in _s3_keys.items() if value})  # else boto3's chain
    _product_files = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": _s3_options}
elif "." in PRODUCT_FILE_STORAGE:
    _product_files = {"BACKEND": PRODUCT_FILE_STORAGE}
else:
    raise ImproperlyConfigured(
        f"PRODUCT_FILE_STORAGE must be local, s3 or a storage class path, not {PRODUCT_FILE_STORAGE!r}"
    )
MAX_UPLOAD_BYTES = env.int("MAX_UPLOAD_BYTES", default=100 * 1024 * 1024)
# Uploads above this are spooled to a temporary file, never held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- Stripe / dj-stripe -----------------------------------------------------

# A well-formed dummy key: it only ever works against the local fake server.
LOCAL_FAKE_STRIPE_KEY = "sk_test_" + "localfake" + "0" * 24
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default=LOCAL_FAKE_STRIPE_KEY)
_default_api_base = "http://127.0.0.1:8420" if STRIPE_SECRET_KEY == LOCAL_FAKE_STRIPE_KEY else ""
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default=_default_api_base).rstrip("/")
DEMO_WEBHOOK_SECRET = "whsec_local"
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default=DEMO_WEBHOOK_SECRET if DEBUG else "")
if not DEBUG and STRIPE_WEBHOOK_SECRET in ("", DEMO_WEBHOOK_SECRET):
    # Production: refuse to start rather than accept webhooks signed with a secret everyone knows.
    raise ImproperlyConfigured("STRIPE_WEBHOOK_SECRET must be set to the endpoint's signing secret")
# The Stripe account whose events we apply (an event naming another account is recorded and ignored).
STRIPE_ACCOUNT_ID = env.str("STRIPE_ACCOUNT_ID", default="")
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=10.0)
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)

STRIPE_LIVE_MODE = STRIPE_SECRET_KEY.startswith(("sk_live_", "rk_live_"))
if STRIPE_LIVE_MODE:
    STRIPE_LIVE_SECRET_KEY = STRIPE_SECRET_KEY
else:
    STRIPE_TEST_SECRET_KEY = STRIPE_SECRET_KEY
if STRIPE_API_BASE:
    STRIPE_API_HOST = STRIPE_API_BASE
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
DJSTRIPE_WEBHOOK_TOLERANCE = 300
# Webhook deliveries never reach dj-stripe's view: payments.views.stripe_webhook
# serves its URL, claims the event (one row per event id) and a Celery task
# applies it (payments.webhooks, payments.tasks).
# Card payments and refunds left in flight longer than this are settled by
# payments.tasks.reconcile_payments (Stripe is asked for the truth).
STRIPE_RECONCILE_AFTER_SECONDS = env.int("STRIPE_RECONCILE_AFTER_SECONDS", default=120)

# --- HTTP, static, i18n -----------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "product_files": _product_files,  # catalog.storage
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or TESTING
        else "config.static_storage.LenientManifestStaticFilesStorage"  # a missing manifest never fails a page
    },
}

# A request body above this is answered 413 before any view runs.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=256 * 1024)
# API paths have no trailing slash and never redirect (unknown /api/ paths hit the
# 404 catch-all); the admin, the dashboard and dj-stripe's webhook URL
# (/stripe/webhook/<uuid>/, as the contract gives it) keep theirs.
APPEND_SLASH = True

SILENCED_SYSTEM_CHECKS: list[str] = []
if STRIPE_API_BASE:
    # djstripe.W002 warns that STRIPE_API_HOST points away from Stripe: that
    # is deliberate when a local fake server is configured.
    SILENCED_SYSTEM_CHECKS.append("djstripe.W002")

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- logging ----------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_context": {"()": "config.logging.RequestContextFilter"}},
    "formatters": {
        "json": JSON_FORMATTER,
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["request_context"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Our access log line replaces Django's per-request lines; 5xx are
        # still logged here, with the traceback of an uncaught exception.
        "django.request": {"level": "ERROR", "propagate": True},
        "django.server": {"level": "WARNING", "propagate": True},
        "stripe": {"level": "WARNING"},
    },
}

# --- error reporting (on only when SENTRY_DSN is set) ------------------------

from config.sentry import sentry_init  # noqa: E402

sentry_init(env)
