"""FastAPI test app for asgi_frameworks_test.go: the routes listed in
starletteapp/app.py, written the FastAPI way (typed path parameters, a
pydantic model, Form fields, dependency-free async endpoints)."""

import asyncio
import hashlib
from typing import List

from fastapi import BackgroundTasks, FastAPI, Form, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

app = FastAPI()
startups = []
gates = {}  # token -> asyncio.Event


def gate(token):
    return gates.setdefault(token, asyncio.Event())


@app.on_event("startup")
async def startup():
    startups.append("startup")
    app.state.started = "by on_startup"


class Numbers(BaseModel):
    numbers: List[int]
    label: str


@app.get("/hello/{name}", response_class=PlainTextResponse)
async def hello(name: str):
    return "Hello, %s!" % name


@app.post("/json")
async def json_sum(data: Numbers):
    return {"sum": sum(data.numbers), "count": len(data.numbers), "label": data.label}


@app.post("/form")
async def form(name: str = Form(...), color: List[str] = Form(...)):
    return {"name": name, "colors": color}


@app.get("/cookies/set", response_class=PlainTextResponse)
async def cookies_set():
    resp = PlainTextResponse("cookies set")
    resp.set_cookie("flavor", "chocolate", path="/")
    resp.set_cookie("size", "large", path="/", httponly=True)
    return resp


@app.get("/cookies/read")
async def cookies_read(request: Request):
    return dict(request.cookies)


@app.get("/redirect")
async def redirect(request: Request):
    return RedirectResponse(request.url_for("hello", name="world"), status_code=302)


@app.get("/stream")
async def stream(n: int = 5):
    async def generate():
        for i in range(n):
            yield "chunk %d: %s\n" % (i, chr(ord("a") + i % 26) * 1000)
            await asyncio.sleep(0)

    return StreamingResponse(generate(), media_type="text/plain")


@app.get("/gated")
async def gated(token: str):
    event = gate(token)

    async def generate():
        yield b"first\n"
        try:
            await asyncio.wait_for(event.wait(), 5)
        except asyncio.TimeoutError:
            yield b"timeout\n"
        else:
            yield b"second\n"

    return StreamingResponse(generate(), media_type="text/plain")


@app.get("/release", response_class=PlainTextResponse)
async def release(token: str):
    gate(token).set()
    return "released"


@app.post("/upload")
async def upload(request: Request):
    h = hashlib.sha256()
    size = chunks = 0
    async for chunk in request.stream():
        if chunk:
            h.update(chunk)
            size += len(chunk)
            chunks += 1
    return {"sha256": h.hexdigest(), "size": size, "chunks": chunks}


@app.get("/state")
async def state(request: Request):
    return {"started": request.app.state.started, "startups": len(startups)}


@app.get("/sleep", response_class=PlainTextResponse)
async def sleep():
    await asyncio.sleep(0.2)
    return "slept"


@app.get("/urls")
async def urls(request: Request):
    url = request.url_for("hello", name="world")
    return {"hello": url.path, "external": str(url)}


@app.websocket("/ws")
async def ws(websocket: WebSocket):
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


# Work after the response (post_response_test.go): the client must have the
# whole response before it runs.
background_done = []


async def _slow_task(tag: str, delay: float):
    await asyncio.sleep(delay)
    background_done.append(tag)


@app.post("/background", response_class=PlainTextResponse)
async def background(tag: str, background_tasks: BackgroundTasks):
    background_tasks.add_task(_slow_task, tag, 0.8)
    return "queued"


@app.get("/background-stream")
async def background_stream(tag: str):
    async def chunks():
        for i in range(3):
            yield "chunk %d\n" % i

    return StreamingResponse(chunks(), media_type="text/plain", background=BackgroundTask(_slow_task, tag, 0.6))


@app.get("/background-done")
async def background_list():
    return background_done
