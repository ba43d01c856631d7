"""A Starlette app that calls Go (Options.Functions) from a request, for
TestStarletteGoFunctions in asgi_frameworks_test.go."""

import gohost
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def call(request):
    try:
        return PlainTextResponse(str(gohost.whoami()))
    except Exception as exc:
        return PlainTextResponse("%s: %s" % (type(exc).__name__, exc), status_code=500)


app = Starlette(routes=[Route("/call", call)])
