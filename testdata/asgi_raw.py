"""A raw ASGI 3.0 app: one route per behaviour the Go tests check."""

import asyncio
import hashlib
import json

events = []  # lifespan and disconnect events, for /events


async def body_of(receive):
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise OSError("client went away")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(send, status, body, ctype=b"text/plain", extra=()):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype)] + list(extra)})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            events.append(message["type"])
            if message["type"] == "lifespan.startup":
                scope["state"]["started"] = "yes"
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert scope["type"] == "http"
    path = scope["path"][len(scope["root_path"]):]
    if path == "/hello":
        await respond(send, 200, b"Hello, world!")
    elif path.startswith("/scope"):
        out = {k: v for k, v in scope.items() if k not in ("headers", "raw_path", "query_string", "state", "extensions", "client", "server")}
        out["headers"] = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
        out["raw_path"] = scope["raw_path"].decode("latin-1")
        out["query_string"] = scope["query_string"].decode("latin-1")
        out["state"] = dict(scope["state"])
        out["extensions"] = sorted(scope.get("extensions", {}))
        out["environ"] = scope.get("extensions", {}).get("environ", {})
        out["client"] = list(scope["client"])
        out["server"] = list(scope["server"])
        await respond(send, 200, json.dumps(out).encode(), b"application/json")
    elif path == "/echo":
        data = await body_of(receive)
        await respond(send, 200, data, b"application/octet-stream")
    elif path == "/sha":
        h = hashlib.sha256()
        n = 0
        while True:
            message = await receive()
            h.update(message.get("body", b""))
            n += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await respond(send, 200, json.dumps({"sha256": h.hexdigest(), "bytes": n}).encode(), b"application/json")
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for i in range(5):
            await send({"type": "http.response.body", "body": b"chunk %d\n" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/gated":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"before gate\n", "more_body": True})
        await asyncio.wait_for(GATE.wait(), 5)
        GATE.clear()
        await send({"type": "http.response.body", "body": b"after gate\n"})
    elif path == "/open-gate":
        GATE.set()
        await respond(send, 200, b"opened")
    elif path == "/disconnect":
        # Streams until the client leaves; then send() raises OSError.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
                await asyncio.sleep(0.001)
        except OSError:
            events.append("send raised OSError")
            raise
    elif path == "/wait-disconnect":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"waiting\n", "more_body": True})
        message = await receive()  # the body (empty)
        message = await receive()
        events.append("received " + message["type"])
    elif path == "/events":
        await respond(send, 200, json.dumps(events).encode(), b"application/json")
    elif path == "/raise":
        raise ValueError("boom in asgi")
    elif path == "/raise-after-start":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("boom after start")
    elif path == "/raise-after-complete":
        await respond(send, 500, b"handled, then raised")
        raise ValueError("raised after the response")
    elif path == "/no-start":
        return
    elif path == "/body-before-start":
        try:
            await send({"type": "http.response.body", "body": b"x"})
        except RuntimeError as e:
            await respond(send, 200, ("RuntimeError: %s" % e).encode())
    elif path == "/start-twice":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        except RuntimeError as e:
            await send({"type": "http.response.body", "body": ("RuntimeError: %s" % e).encode()})
    elif path == "/bad-header":
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [(b"x-bad", b"a\r\nb")]})
        except ValueError as e:
            await respond(send, 200, ("ValueError: %s" % e).encode())
    elif path == "/trailers":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")], "trailers": True})
        await send({"type": "http.response.body", "body": b"with trailers"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc123")]})
    elif path == "/pathsend":
        p = scope["query_string"].decode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]})
        await send({"type": "http.response.pathsend", "path": p})
    elif path == "/big":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(64):
            await send({"type": "http.response.body", "body": b"y" * 65536, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/slow":
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            events.append("slow cancelled")
            raise
        await respond(send, 200, b"slow")
    elif path == "/system-exit":
        raise SystemExit(3)
    elif path == "/start-then-raise":
        # Nothing reached the wire: the client must get a clean 500.
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        raise ValueError("boom after start, before any body")
    elif path == "/early-hints":
        await send({"type": "http.response.early_hint",
                    "links": [b"</style.css>; rel=preload; as=style", b"</app.js>; rel=preload; as=script"]})
        await respond(send, 200, b"hinted")
    elif path == "/early-hint-bad":
        try:
            await send({"type": "http.response.early_hint", "links": [b"</x>\r\nSet-Cookie: a=1"]})
            answer = b"sent"
        except ValueError as e:
            answer = ("ValueError: %s" % e).encode()
        await respond(send, 200, answer)
    elif path == "/trailers-declared":
        # RFC 9110 section 6.6.2: announce the trailer fields in the head.
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"content-type", b"text/plain"), (b"trailer", b"x-checksum, x-count")]})
        await send({"type": "http.response.body", "body": b"with ", "more_body": True})
        await send({"type": "http.response.body", "body": b"trailers"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc123"), (b"x-count", b"2")]})
    elif path.startswith("/background"):
        # Work after the last body message (Starlette's BackgroundTasks):
        # the client must have the whole response before it runs.
        query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p)
        delay = float(query.get("d", "0"))
        tag = query.get("tag", path)
        if path == "/background-stream":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            for i in range(3):
                await send({"type": "http.response.body", "body": b"chunk %d\n" % i, "more_body": True})
                await asyncio.sleep(0.01)  # each chunk is flushed: the body is chunked
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        else:
            await respond(send, 200, b"Hello, world!")
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            events.append("background cancelled " + tag)
            raise
        # After the response, receive() says the exchange is over.
        message = await asyncio.wait_for(receive(), 2)
        while message["type"] == "http.request" and message.get("more_body"):
            message = await asyncio.wait_for(receive(), 2)
        if message["type"] == "http.request":
            message = await asyncio.wait_for(receive(), 2)
        events.append("background %s received %s" % (tag, message["type"]))
        if path == "/background-raise":
            raise ValueError("background task failed")
        events.append("background done " + tag)
    else:
        await respond(send, 404, b"no route " + path.encode())


GATE = asyncio.Event()


async def ws_app(scope, receive, send):
    """WebSocket routes: /echo, /refuse, /deny, /close-code, /raise."""
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "http":
        return await app(scope, receive, send)
    path = scope["path"][len(scope["root_path"]):]
    message = await receive()
    assert message["type"] == "websocket.connect"
    if path == "/refuse":
        await send({"type": "websocket.close"})
        return
    if path == "/deny":
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "websocket.http.response.body", "body": b"no entry"})
        return
    if path == "/raise":
        await send({"type": "websocket.accept"})
        raise ValueError("boom on a websocket")
    subprotocol = scope["subprotocols"][0] if scope["subprotocols"] else None
    await send({"type": "websocket.accept", "subprotocol": subprotocol,
                "headers": [(b"x-accepted", b"yes")]})
    if path == "/close-code":
        await send({"type": "websocket.close", "code": 4001, "reason": "bye now"})
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            events.append("ws disconnect %d" % message["code"])
            return
        if message.get("text") == "close":
            await send({"type": "websocket.close", "code": 1000})
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": "echo: " + message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"][::-1]})
