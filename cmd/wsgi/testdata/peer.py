# For the listener tests: answers, as JSON, who the client is and where
# the request came in (REMOTE_ADDR and SERVER_* for WSGI, the scope's
# client and server for ASGI), the process and worker, and whether the
# socket-activation variables reached the app's environment.
import json
import os


def _common():
    return {
        "pid": os.getpid(),
        "worker": os.environ.get("WSGI_WORKER_ID", ""),
        "listen_env": sorted(k for k in os.environ if k.startswith("LISTEN_") or k == "WSGI_WORKER_FDS"),
    }


def application(environ, start_response):
    body = _common()
    body.update({
        "remote_addr": environ.get("REMOTE_ADDR"),
        "remote_port": environ.get("REMOTE_PORT"),
        "server_name": environ["SERVER_NAME"],
        "server_port": environ["SERVER_PORT"],
    })
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = _common()
    body.update({"client": scope.get("client", "absent"), "server": scope.get("server", "absent")})
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})
