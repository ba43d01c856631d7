"""A WebSocket app that records what it receives, per connection (the path),
so tests can check which messages and which disconnect code reached it.
With ?close=N it first closes with code N, then keeps receiving."""

import json

received = {}  # path -> ["text ...", "bytes ...", "disconnect N"]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body",
                    "body": json.dumps(received.get(scope["path"], [])).encode()})
        return
    log = received.setdefault(scope["path"], [])
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    query = dict(p.split("=") for p in scope["query_string"].decode().split("&") if p)
    if "close" in query:
        await send({"type": "websocket.close", "code": int(query["close"])})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            log.append("disconnect %d" % message["code"])
            return
        if message.get("text") is not None:
            log.append("text " + ascii(message["text"]))
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            log.append("bytes " + ascii(message["bytes"]))
            await send({"type": "websocket.send", "bytes": message["bytes"]})
