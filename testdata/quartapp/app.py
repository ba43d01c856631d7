"""Quart test app for asgi_frameworks_test.go: the routes listed in
starletteapp/app.py, written the Quart (async Flask) way."""

import asyncio
import hashlib

from quart import Quart, jsonify, make_response, redirect, request, url_for, websocket

app = Quart(__name__)
startups = []
gates = {}  # token -> asyncio.Event


def gate(token):
    return gates.setdefault(token, asyncio.Event())


@app.before_serving
async def startup():
    startups.append("startup")
    app.config["STARTED"] = "by before_serving"


@app.route("/hello/<name>")
async def hello(name):
    return "Hello, %s!" % name, 200, {"Content-Type": "text/plain; charset=utf-8"}


@app.route("/json", methods=["POST"])
async def json_sum():
    data = await request.get_json()
    numbers = data["numbers"]
    return jsonify({"sum": sum(numbers), "count": len(numbers), "label": data["label"]})


@app.route("/form", methods=["POST"])
async def form():
    f = await request.form
    return jsonify({"name": f["name"], "colors": f.getlist("color")})


@app.route("/cookies/set")
async def cookies_set():
    resp = await make_response("cookies set", 200, {"Content-Type": "text/plain"})
    resp.set_cookie("flavor", "chocolate", path="/")
    resp.set_cookie("size", "large", path="/", httponly=True)
    return resp


@app.route("/cookies/read")
async def cookies_read():
    return jsonify(dict(request.cookies))


@app.route("/redirect")
async def go():
    return redirect(url_for("hello", name="world"))


@app.route("/stream")
async def stream():
    n = int(request.args.get("n", "5"))

    async def generate():
        for i in range(n):
            yield ("chunk %d: %s\n" % (i, chr(ord("a") + i % 26) * 1000)).encode()
            await asyncio.sleep(0)

    return generate(), 200, {"Content-Type": "text/plain"}


@app.route("/gated")
async def gated():
    event = gate(request.args["token"])

    async def generate():
        yield b"first\n"
        try:
            await asyncio.wait_for(event.wait(), 5)
        except asyncio.TimeoutError:
            yield b"timeout\n"
        else:
            yield b"second\n"

    return generate(), 200, {"Content-Type": "text/plain"}


@app.route("/release")
async def release():
    gate(request.args["token"]).set()
    return "released", 200, {"Content-Type": "text/plain"}


@app.route("/upload", methods=["POST"])
async def upload():
    h = hashlib.sha256()
    size = chunks = 0
    async for chunk in request.body:
        if chunk:
            h.update(chunk)
            size += len(chunk)
            chunks += 1
    return jsonify({"sha256": h.hexdigest(), "size": size, "chunks": chunks})


@app.route("/state")
async def state():
    return jsonify({"started": app.config.get("STARTED"), "startups": len(startups)})


@app.route("/sleep")
async def sleep():
    await asyncio.sleep(0.2)
    return "slept", 200, {"Content-Type": "text/plain"}


@app.route("/urls")
async def urls():
    return jsonify({
        "hello": url_for("hello", name="world"),
        "external": url_for("hello", name="world", _external=True),
    })


@app.websocket("/ws")
async def ws():
    offered = websocket.requested_subprotocols
    await websocket.accept(subprotocol="chat.v1" if "chat.v1" in offered else None)
    while True:
        data = await websocket.receive()
        if isinstance(data, str):
            if data == "close":
                await websocket.close(4001, "bye")
                return
            await websocket.send("echo: " + data)
        else:
            await websocket.send(data[::-1])
