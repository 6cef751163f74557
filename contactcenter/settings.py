"""Settings for every environment, read from environment variables (12-factor).

The defaults give the embedded set-up: SQLite in the project folder and a
file-system Celery broker, so `make run` needs no server. Production sets
DATABASE_URL, CELERY_BROKER_URL, SECRET_KEY, FIELD_ENCRYPTION_KEYS, ALLOWED_HOSTS
and an https PUBLIC_BASE_URL (which switches on the TLS-only settings).
"""

import datetime
from pathlib import Path

import environ
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env (written by `make run`) is read if present; real env vars win.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
# The insecure default only serves tests and a first look; `check --deploy`
# flags it (security.W009) so production cannot miss setting SECRET_KEY.
SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-development-only-set-SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

# The public URL the SMS provider calls (scheme://host[:port], no trailing
# slash). Behind a TLS-terminating proxy the request's own URL differs from
# the one Twilio signed, so webhook signatures are checked against this.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="").rstrip("/")

# Fernet keys for connector secrets, comma separated: the first encrypts, all
# decrypt, so a key can be rotated by prepending a new one. Without it a key is
# derived from SECRET_KEY (see contactcenter.crypto), fine for a demo only.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])

INSTALLED_APPS = [
    "contactcenter.apps.ContactCenterAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    "campaigns",
    "bots",
    "sms_channel",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files straight from gunicorn: after the security middleware, so
    # TLS redirects and HSTS cover them too.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes requires: turns a locked-out sign-in into its page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "contactcenter.urls"

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

WSGI_APPLICATION = "contactcenter.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while a worker writes; IMMEDIATE takes the
    # write lock at BEGIN so concurrent writers wait (timeout) instead of
    # failing with "database is locked" when a read transaction upgrades.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes first: it refuses a locked-out sign-in before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# WhiteNoise serves what collectstatic gathered there, gzipped once at collect
# time. It scans the folder at start-up and warns if it is missing, so it is
# made (empty) for development and tests, which serve from the apps' folders.
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# People sign in at /accounts/login/ and land on their own page (agent
# console or supervisor dashboard); the admin keeps its own login.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Phone numbers are stored in E.164. A number typed without "+" is read in
# this region (ISO 3166 code, e.g. "US"); empty means "+" is required.
PHONE_DEFAULT_REGION = env.str("PHONE_DEFAULT_REGION", default="")

# Celery. The embedded default is kombu's file-system transport in var/, so a
# worker and beat run with no broker server.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = BASE_DIR / "var" / "celery-broker"
    for _sub in ("out", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # Without it kombu writes its exchange tables to ./control.
        "control_folder": str(_broker_dir / "control"),
    }
# One queue per kind of work, so a flood of one (say, outbound SMS) never
# delays another (routing). Routes are by module: a task published anywhere
# goes to its app's queue; "celery", the default, takes anything unrouted. A
# worker started without -Q consumes all four. Each binds its own routing key
# (left out, all four would share the key "celery" on the same exchange).
CELERY_TASK_QUEUES = [
    Queue(name, routing_key=name) for name in ("routing", "sms", "bots", "celery")
]
CELERY_TASK_ROUTES = {
    "campaigns.tasks.*": {"queue": "routing"},
    "sms_channel.tasks.*": {"queue": "sms"},
    "bots.tasks.*": {"queue": "bots"},
}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 60
CELERY_TASK_SOFT_TIME_LIMIT = 50
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Periodic tasks, declared here once; the database scheduler copies them into
# django-celery-beat's tables, where the admin shows them.
CELERY_BEAT_SCHEDULE = {
    "sweep-stale-sms": {"task": "sms_channel.tasks.sweep_stale_sms_task", "schedule": 15.0},
    "sweep-queue-timeouts": {
        "task": "campaigns.tasks.sweep_queue_timeouts_task",
        "schedule": 2.0,
    },
    "sweep-transfer-timeouts": {
        "task": "campaigns.tasks.sweep_transfer_timeouts_task",
        "schedule": 2.0,
    },
    "sweep-bot-waits": {"task": "bots.tasks.sweep_bot_waits_task", "schedule": 5.0},
    # Routing is event-driven; this catches anything an event missed.
    "route-all-campaigns": {"task": "campaigns.tasks.route_all_campaigns_task", "schedule": 5.0},
}

# The REST API (/api/): integrators send "Authorization: Token <key>"; a
# signed-in browser (the docs page) uses its session. Token first, so a
# request without credentials gets 401 with a WWW-Authenticate header.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "campaigns.api.pagination.ApiPagination",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SMS contact center API",
    "DESCRIPTION": (
        "Conversations, campaign statistics, blacklists and agent status. "
        "Authenticate with the header `Authorization: Token <key>`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI from drf-spectacular-sidecar's static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Three choice sets share the field name "status": name each one.
    "ENUM_NAME_OVERRIDES": {
        "InteractionStatusEnum": "campaigns.models.Interaction.Status",
        "AgentStatusEnum": "campaigns.models.AgentProfile.Status",
        "BulkRowStatusEnum": "campaigns.api.serializers.BULK_ROW_STATUSES",
    },
}

# An agent whose console has not sent a heartbeat for this long gets no new work.
AGENT_HEARTBEAT_STALE_SECONDS = env.int("AGENT_HEARTBEAT_STALE_SECONDS", default=60)

# TLS-only settings follow the public URL: an https deployment gets secure
# cookies, HSTS and redirects; a plain-http demo or test run does not.
USE_TLS = PUBLIC_BASE_URL.startswith("https://")
SESSION_COOKIE_SECURE = USE_TLS
CSRF_COOKIE_SECURE = USE_TLS
SECURE_SSL_REDIRECT = USE_TLS
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if USE_TLS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = USE_TLS
SECURE_HSTS_PRELOAD = False
# Preloading commits the whole domain and its subdomains to HTTPS in browsers
# for months: the domain owner's decision, so `check --deploy` must not demand it.
SILENCED_SYSTEM_CHECKS = ["security.W021"]
TRUST_X_FORWARDED_PROTO = env.bool("TRUST_X_FORWARDED_PROTO", default=USE_TLS)
if TRUST_X_FORWARDED_PROTO:
    # Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# How many proxies in front of gunicorn append the caller's address to
# X-Forwarded-For; the sign-in limit counts failures per client address.
# 0 reads the socket's peer (REMOTE_ADDR).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=1 if TRUST_X_FORWARDED_PROTO else 0)
CSRF_TRUSTED_ORIGINS = [PUBLIC_BASE_URL] if PUBLIC_BASE_URL else []
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# Password guessing: django-axes refuses a username from one address after
# AXES_FAILURE_LIMIT failures in a row, for AXES_COOLOFF_TIME, on both the
# admin's and the agents' sign-in pages. Username and address together, so
# nobody can lock a colleague out from elsewhere. A success clears the count.
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = datetime.timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# A try during the pause does not extend it, so the page can say when it ends.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "contactcenter.login_limits.client_ip"
AXES_USERNAME_CALLABLE = "contactcenter.login_limits.attempted_username"
AXES_LOCKOUT_CALLABLE = "contactcenter.login_limits.lockout_response"
# Failures only: no extra row written on every successful sign-in and sign-out.
AXES_DISABLE_ACCESS_LOG = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Twilio's REST API; point it at a local fake or a proxy to test without Twilio.
TWILIO_API_BASE_URL = env.str("TWILIO_API_BASE_URL", default="https://api.twilio.com")
TWILIO_TIMEOUT_SECONDS = 10
