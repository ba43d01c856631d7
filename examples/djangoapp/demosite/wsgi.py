"""WSGI entry point: "demosite.wsgi:application" in ../apps.toml.

Importing it also prepares the app (see firstrun.py): the database is
created or migrated, the admin's static files are collected into static/
and the demo superuser is created if missing.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demosite.settings")

application = get_wsgi_application()

from demosite import firstrun  # noqa: E402 (needs the settings set up above)

firstrun.prepare()
