"""Starlette test app for asgi_frameworks_test.go.

The four ASGI framework apps (starletteapp, fastapiapp, quartapp,
djangoasgi) implement the same routes:

    GET  /hello/{name}      text/plain "Hello, {name}!"
    POST /json              {"numbers": [...], "label": s} -> {"sum", "count", "label"}
    POST /form              urlencoded name, color... -> {"name", "colors"}
    GET  /cookies/set       two Set-Cookie headers (flavor, size; size HttpOnly)
    GET  /cookies/read      the request's cookies as JSON
    GET  /redirect          302 to the URL of /hello/world, built by the framework
    GET  /stream?n=N        N lines "chunk i: <1000 letters>", one per chunk
    GET  /gated?token=T     "first\n", then waits (5 s at most) for /release,
                            then "second\n" (or "timeout\n")
    GET  /release?token=T   opens the gate of /gated
    POST /upload            the raw body, read in chunks -> {"sha256", "size", "chunks"}
    GET  /state             what the lifespan startup left for requests
    GET  /sleep             awaits asyncio.sleep(0.2), then "slept"
    GET  /urls              {"hello": path of /hello/world, "external": its absolute URL}
    GET  /log?msg=M         (Starlette only) logs M at WARNING with Python logging
    WS   /ws                echo: text -> "echo: " + text, bytes -> reversed,
                            text "close" -> server closes with 4001 "bye";
                            accepts subprotocol "chat.v1" when offered
"""

import asyncio
import contextlib
import hashlib
import logging

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocketDisconnect

startups = []
gates = {}  # token -> asyncio.Event


def gate(token):
    return gates.setdefault(token, asyncio.Event())


async def hello(request):
    return PlainTextResponse("Hello, %s!" % request.path_params["name"])


async def json_sum(request):
    data = await request.json()
    numbers = data["numbers"]
    return JSONResponse({"sum": sum(numbers), "count": len(numbers), "label": data["label"]})


async def form(request):
    f = await request.form()
    return JSONResponse({"name": f["name"], "colors": f.getlist("color")})


async def cookies_set(request):
    resp = PlainTextResponse("cookies set")
    resp.set_cookie("flavor", "chocolate", path="/")
    resp.set_cookie("size", "large", path="/", httponly=True)
    return resp


async def cookies_read(request):
    return JSONResponse(dict(request.cookies))


async def redirect(request):
    return RedirectResponse(request.url_for("hello", name="world"), status_code=302)


async def stream(request):
    n = int(request.query_params.get("n", "5"))

    async def generate():
        for i in range(n):
            yield "chunk %d: %s\n" % (i, chr(ord("a") + i % 26) * 1000)
            await asyncio.sleep(0)

    return StreamingResponse(generate(), media_type="text/plain")


async def gated(request):
    event = gate(request.query_params["token"])

    async def generate():
        yield b"first\n"
        try:
            await asyncio.wait_for(event.wait(), 5)
        except asyncio.TimeoutError:
            yield b"timeout\n"
        else:
            yield b"second\n"

    return StreamingResponse(generate(), media_type="text/plain")


async def release(request):
    gate(request.query_params["token"]).set()
    return PlainTextResponse("released")


async def upload(request):
    h = hashlib.sha256()
    size = chunks = 0
    async for chunk in request.stream():
        if chunk:
            h.update(chunk)
            size += len(chunk)
            chunks += 1
    return JSONResponse({"sha256": h.hexdigest(), "size": size, "chunks": chunks})


async def state(request):
    return JSONResponse({"started": request.state.started, "startups": len(startups)})


async def sleep(request):
    await asyncio.sleep(0.2)
    return PlainTextResponse("slept")


async def urls(request):
    url = request.url_for("hello", name="world")
    return JSONResponse({"hello": url.path, "external": str(url)})


async def log(request):
    logging.getLogger("starletteapp").warning("%s", request.query_params["msg"])
    return PlainTextResponse("logged")


async def ws(websocket):
    offered = websocket.scope.get("subprotocols", [])
    await websocket.accept(subprotocol="chat.v1" if "chat.v1" in offered else None)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                if message["text"] == "close":
                    await websocket.close(code=4001, reason="bye")
                    return
                await websocket.send_text("echo: " + message["text"])
            else:
                await websocket.send_bytes(message["bytes"][::-1])
    except WebSocketDisconnect:
        pass


@contextlib.asynccontextmanager
async def lifespan(app):
    startups.append("startup")
    # Lifespan state: Starlette copies it into every request's scope.
    yield {"started": "by lifespan"}


app = Starlette(
    routes=[
        Route("/hello/{name}", hello, name="hello"),
        Route("/json", json_sum, methods=["POST"]),
        Route("/form", form, methods=["POST"]),
        Route("/cookies/set", cookies_set),
        Route("/cookies/read", cookies_read),
        Route("/redirect", redirect),
        Route("/stream", stream),
        Route("/gated", gated),
        Route("/release", release),
        Route("/upload", upload, methods=["POST"]),
        Route("/state", state),
        Route("/sleep", sleep),
        Route("/urls", urls),
        Route("/log", log),
        WebSocketRoute("/ws", ws),
    ],
    lifespan=lifespan,
)
