"""Starlette JSON workload: GET /json."""

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def json_view(request):
    return JSONResponse({"message": "Hello, World!"})


app = Starlette(routes=[Route("/json", json_view)])
