"""WSGI and ASGI apps for the TLS, HTTP/2 and HTTP/3 tests: GET answers
with the scheme and protocol, /remote with REMOTE_ADDR and the scheme,
/stream yields chunks, POST echoes the body;
the ASGI app echoes WebSocket text messages."""


def application(environ, start_response):
    if environ["REQUEST_METHOD"] == "POST":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
        return [body]
    if environ["PATH_INFO"] == "/remote":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [("%s %s\n" % (environ["REMOTE_ADDR"], environ["wsgi.url_scheme"])).encode()]
    if environ["PATH_INFO"] == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"chunk %d\n" % i for i in range(5))
    body = "wsgi %s %s\n" % (environ["wsgi.url_scheme"], environ["SERVER_PROTOCOL"])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]


async def app(scope, receive, send):
    if scope["type"] == "websocket":  # echo
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text") or ""})
    if scope["type"] != "http":
        return
    if scope["method"] == "POST":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]})
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    if scope["path"] == "/stream":
        for i in range(5):
            await send({"type": "http.response.body", "body": b"chunk %d\n" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.body", "body": ("asgi %s HTTP/%s\n" % (scope["scheme"], scope["http_version"])).encode()})
