"""An ASGI app whose lifespan writes to the file named by
$WSGI_TEST_LIFESPAN, so the test can see startup and shutdown ran."""

import os

LOG = os.environ.get("WSGI_TEST_LIFESPAN", "")


def note(line):
    if LOG:
        with open(LOG, "a") as f:
            f.write(line + "\n")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            note(message["type"])
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"asgi " + scope["path"].encode()})


async def failing(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "cannot reach the database"})


def _at_exit():
    note("atexit")


import atexit  # noqa: E402

atexit.register(_at_exit)
