"""Starlette on the driven loop (asgi_driven_test.go): a sync endpoint
(anyio's worker threads), sniffio, StreamingResponse and BackgroundTask."""

import asyncio
import threading

import sniffio
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

done = []


def sync_endpoint(request):
    # Starlette runs it with anyio.to_thread.run_sync.
    return JSONResponse({"thread": threading.get_ident(), "name": threading.current_thread().name})


async def library(request):
    return JSONResponse({"library": sniffio.current_async_library()})


async def stream(request):
    async def chunks():
        for i in range(3):
            yield "chunk%d\n" % i
            await asyncio.sleep(0.01)

    return StreamingResponse(chunks(), media_type="text/plain")


async def background(request):
    async def task():
        await asyncio.sleep(0.01)
        done.append(1)

    return PlainTextResponse("ok", background=BackgroundTask(task))


async def count(request):
    return JSONResponse({"done": len(done)})


app = Starlette(routes=[
    Route("/sync", sync_endpoint),
    Route("/library", library),
    Route("/stream", stream),
    Route("/background", background),
    Route("/count", count),
])
