"""An ASGI app for the live view tests: GET /linger?S awaits up to S seconds
in linger_in_asgi_view (until GET /release), so that a snapshot finds its
task there; other paths answer at once. A WebSocket waits for its client's
messages in wait_in_websocket."""

import asyncio

released = None


async def linger_in_asgi_view(seconds):
    global released
    if released is None:
        released = asyncio.Event()
    try:
        await asyncio.wait_for(released.wait(), seconds)
    except asyncio.TimeoutError:
        pass


async def wait_in_websocket(receive):
    """A WebSocket's task waits here for the client's messages."""
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return


async def application(scope, receive, send):
    global released
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await wait_in_websocket(receive)
        return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/release" and released is not None:
        released.set()
    elif path == "/reset":
        released = None
    elif path.startswith("/linger"):
        await linger_in_asgi_view(float(scope["query_string"] or b"5"))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"done\n"})
