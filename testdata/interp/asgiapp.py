"""An ASGI app for the Interpreters tests: which interpreter answered, and
how many lifespan startups that interpreter ran."""

import asyncio
import json
import urllib.parse

started = 0


def interpreter():
    import _interpreters  # 3.13

    return _interpreters.get_current()[0]


async def app(scope, receive, send):
    global started
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                started += 1
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    query = urllib.parse.parse_qs(scope["query_string"].decode())
    await asyncio.sleep(float(query.get("sleep", ["0"])[0]))
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"chunk %d\n" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    body = json.dumps({"interp": interpreter(), "started": started}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
