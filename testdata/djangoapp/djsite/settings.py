"""Django settings for the frameworks_test.go app.

Django settings are process-wide: the test binary loads this app once.
No database: the views need none.
"""

import logging

SECRET_KEY = "gowsgi-test-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = []
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "djsite.urls"
DATABASES = {}
USE_TZ = True
TEMPLATES = []

# Keep uploads of the test (~300 KiB) in memory: 2.5 MiB is Django's default.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2621440

# No logging set-up: errors reach Go through the host's root logging
# handler, the 404 and CSRF warnings the tests provoke on purpose do not.
LOGGING_CONFIG = None
logging.getLogger("django.request").setLevel(logging.ERROR)
logging.getLogger("django.security").setLevel(logging.ERROR)
