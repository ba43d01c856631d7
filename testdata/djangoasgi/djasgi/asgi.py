"""ASGI entry point, loaded by the tests as "djasgi.asgi:application"."""

import os

from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler

# The same settings as the WSGI test app (djsite/wsgi.py does the same).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djsite.settings")

# Sets Django up (django.setup) the way an ASGI server's entry point does.
_default = get_asgi_application()


class Handler(ASGIHandler):
    """Django's ASGI handler, with the URLconf of this package.

    request.urlconf is Django's per-request URLconf override (what a
    middleware would set); it leaves djsite.settings.ROOT_URLCONF, shared
    with the WSGI app, alone.
    """

    async def get_response_async(self, request):
        request.urlconf = "djasgi.urls"
        return await super().get_response_async(request)


application = Handler()
