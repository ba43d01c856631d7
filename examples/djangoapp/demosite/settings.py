"""Settings of the Django half of the demo (served at /django/ by ../apps.toml).

Demo only: the secret key and the admin password have public defaults.
Environment variables:

  DEMO_DATA_DIR        where django.sqlite3 lives (default: data/ in the app directory)
  DEMO_DJANGO_PREFIX   the URL prefix the app is mounted at (default /django; must
                       match apps.toml: static URLs are built from it)
  DEMO_SECRET_KEY      SECRET_KEY (default: a public demo key)
  DEMO_DEBUG           "1" turns DEBUG on (default off)
  DEMO_ADMIN_USER, DEMO_ADMIN_PASSWORD
                       the superuser created on first run (default admin/admin)
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("DEMO_DATA_DIR") or BASE_DIR / "data")
URL_PREFIX = "/" + os.environ.get("DEMO_DJANGO_PREFIX", "/django").strip("/")

SECRET_KEY = os.environ.get("DEMO_SECRET_KEY", "demo-only-not-secret-3f9c1e0a7b2d4c68")
DEBUG = os.environ.get("DEMO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "blog",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",  # the JSON API views are exempt, the admin is not
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demosite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "django.sqlite3",
        # Requests run on several threads: wait for the write lock rather
        # than fail with "database is locked".
        "OPTIONS": {"timeout": 30},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_L10N = True
USE_TZ = True

# The Go server serves STATIC_ROOT (the app directory's static/, filled by
# collectstatic at startup) at <prefix>/static/ (static = "always" in
# apps.toml). The URL is absolute: Django caches STATIC_URL on first use,
# which happens at import, before any request brings a SCRIPT_NAME.
STATIC_URL = URL_PREFIX + "/static/"
STATIC_ROOT = BASE_DIR / "static"

# No LOGGING: Django's records propagate to the root logger, whose handler
# (installed by the Go host) sends them to the host's log.
