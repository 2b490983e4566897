"""Django settings for Bastion, read from ``BASTION_*`` environment variables.

Without any variable set, Bastion runs on a SQLite file under ``var/`` with a
development secret key, which is the embedded default the demo uses. With
``BASTION_DEBUG=false`` a placeholder secret key is rejected.
"""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from bastion import env

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env.read_str("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env.read_bool("DEBUG", True)

_PLACEHOLDER_KEY = "dev-only-insecure-key-change-me"
SECRET_KEY = env.read_secret("SECRET_KEY") or _PLACEHOLDER_KEY
if not DEBUG and SECRET_KEY == _PLACEHOLDER_KEY:
    raise ImproperlyConfigured(
        "BASTION_SECRET_KEY (or BASTION_SECRET_KEY_FILE) must be set when "
        "BASTION_DEBUG is false: generate one with "
        "'python -c \"import secrets; print(secrets.token_urlsafe(50))\"'"
    )

ALLOWED_HOSTS = env.read_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.read_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "watchers",
    "mitigations",
    "escalations",
    "audit",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "audit.middleware.RequestAddressMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "bastion.urls"
WSGI_APPLICATION = "bastion.wsgi.application"
ASGI_APPLICATION = "bastion.asgi.application"

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

_database_url = env.read_str("DATABASE_URL", "")
if _database_url:
    DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=60)}
    if DATABASES["default"]["ENGINE"].endswith("postgresql"):
        # Lets kill_long_running_queries recognise and spare every Bastion
        # connection by name, over TCP and unix sockets alike.
        DATABASES["default"].setdefault("OPTIONS", {})["application_name"] = "bastion"
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "bastion.sqlite3"),
            # Beat and worker write from separate processes: wait for the
            # file lock instead of failing with "database is locked".
            # IMMEDIATE takes the write lock at BEGIN, so a transaction that
            # reads then writes cannot deadlock on the lock upgrade.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "watchers:incident-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.read_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

REDIS_URL = env.read_str("REDIS_URL", "redis://127.0.0.1:6379/0")

CELERY_BROKER_URL = env.read_str("BROKER_URL", REDIS_URL)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# With Redis, a task taken by a worker that died is delivered again only
# after this timeout. Keep it above the longest step timeout. A worker looks
# for such tasks every 10 s. kombu 5.7 scans on only every tenth of those
# sweeps unless the throttle is 1, which could add 100 s to a redelivery.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.read_int("BROKER_VISIBILITY_TIMEOUT_SECONDS", 3600, 1),
    "unacked_restore_interval": 10,
    "unacked_restore_throttle": 1,
}


def channel_layers(redis_url: str) -> dict[str, dict[str, object]]:
    """Return the CHANNEL_LAYERS setting for the Redis at ``redis_url``.

    channels_redis waits for messages with a 5 s BZPOPMIN, and redis-py 8
    reads with a 5 s socket timeout by default, so idle consumers failed with
    "Timeout reading" and dropped their websockets. A longer finite timeout
    did not help: with redis-py 8.2 on Python 3.11 a cancelled receive then
    went on waiting, and the consumer never finished. No read timeout is
    what redis-py 7 did.
    """
    # NOTE: without a read timeout, a half-open connection to Redis (a
    # network cut with no reset) blocks a consumer's receive until the
    # kernel drops the connection; a Redis restart closes it at once.
    host = {"address": redis_url, "socket_timeout": None}
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [host]},
        }
    }


CHANNEL_LAYERS = channel_layers(REDIS_URL)

# Prometheus, the data source every watcher queries.
PROMETHEUS_URL = env.read_str("PROMETHEUS_URL", "http://127.0.0.1:9090")
PROMETHEUS_TIMEOUT_SECONDS = env.read_float("PROMETHEUS_TIMEOUT_SECONDS", 10.0, 0.1)
PROMETHEUS_BEARER_TOKEN = env.read_secret("PROMETHEUS_BEARER_TOKEN")

# Evaluation. The defaults follow Prometheus alerting behaviour; see the
# watchers app for how each is used.
DISPATCH_EVERY_SECONDS = env.read_float("DISPATCH_EVERY_SECONDS", 5.0, 0.5)
EVALUATION_TASK_SIZE = env.read_int("EVALUATION_TASK_SIZE", 1000, 1)
EVALUATION_BATCH_SIZE = env.read_int("EVALUATION_BATCH_SIZE", 100, 1)
EVALUATION_CONCURRENCY = env.read_int("EVALUATION_CONCURRENCY", 4, 1)
MAX_SERIES_PER_WATCHER = env.read_int("MAX_SERIES_PER_WATCHER", 1000, 1)
DATASOURCE_FAILURES_BEFORE_INCIDENT = env.read_int(
    "DATASOURCE_FAILURES_BEFORE_INCIDENT", 3, 1
)
BASE_URL = env.read_str("BASE_URL", "http://127.0.0.1:8000")

# Mitigation: where actions act, and the guardrails around them.
KUBECONFIG = env.read_str("KUBECONFIG", "")
KUBE_NAMESPACE = env.read_str("KUBE_NAMESPACE", "default")
SCALE_MAX_REPLICAS = env.read_int("SCALE_MAX_REPLICAS", 20, 1)
SCALE_READY_TIMEOUT_SECONDS = env.read_float("SCALE_READY_TIMEOUT_SECONDS", 30.0, 1)
TARGET_REDIS_URL = env.read_str("TARGET_REDIS_URL", "")
TARGET_DATABASE_URL = env.read_str("TARGET_DATABASE_URL", "")
ACTION_DEFAULTS_FILE = env.read_str("ACTION_DEFAULTS_FILE", "")
AUTOMATION_BUDGET_PER_HOUR = env.read_int("AUTOMATION_BUDGET_PER_HOUR", 30, 0)
ACTION_COOLDOWN_SECONDS = env.read_int("ACTION_COOLDOWN_SECONDS", 300, 0)
VERIFY_WINDOW_SECONDS = env.read_int("VERIFY_WINDOW_SECONDS", 120, 0)
VERIFY_EVERY_SECONDS = env.read_float("VERIFY_EVERY_SECONDS", 10.0, 0.1)
MAX_MITIGATION_ATTEMPTS = env.read_int("MAX_MITIGATION_ATTEMPTS", 3, 1)
# Pause after a failed step before the next attempt, so a dependency that is
# down gets time to come back instead of three attempts in a second.
ATTEMPT_RETRY_SECONDS = env.read_float("ATTEMPT_RETRY_SECONDS", 60.0, 0)
STEP_RETRIES = env.read_int("STEP_RETRIES", 2, 0)
RECONCILE_EVERY_SECONDS = env.read_float("RECONCILE_EVERY_SECONDS", 30.0, 1)
RECONCILE_GRACE_SECONDS = env.read_int("RECONCILE_GRACE_SECONDS", 30, 0)

# Escalation and notifications.
ESCALATE_EVERY_SECONDS = env.read_float("ESCALATE_EVERY_SECONDS", 10.0, 1)
ESCALATION_REPEAT_SECONDS = env.read_int("ESCALATION_REPEAT_SECONDS", 1800, 0)
NOTIFICATION_RETRIES = env.read_int("NOTIFICATION_RETRIES", 3, 0)
NOTIFICATION_TIMEOUT_SECONDS = env.read_float("NOTIFICATION_TIMEOUT_SECONDS", 10.0, 0.1)
NOTIFICATION_BACKOFF_SECONDS = env.read_float("NOTIFICATION_BACKOFF_SECONDS", 0.5, 0)

# Approvals and the audit log.
APPROVAL_TIMEOUT_SECONDS = env.read_int("APPROVAL_TIMEOUT_SECONDS", 1800, 1)
TRUST_X_FORWARDED_FOR = env.read_bool("TRUST_X_FORWARDED_FOR", False)

# Absolute paths of the only programs the command runner may start.
COMMAND_ALLOWLIST = env.read_list("COMMAND_ALLOWLIST", [])

LOG_LEVEL = env.read_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # httpx logs every request's full URL at INFO, and a Slack webhook's URL
    # is its secret.
    "loggers": {
        "urllib3": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
