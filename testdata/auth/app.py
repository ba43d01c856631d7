# Echoes the environ keys that authentication sets or hides, as JSON.
import json

KEYS = ("REMOTE_USER", "AUTH_TYPE", "HTTP_AUTHORIZATION", "PATH_INFO")


def application(environ, start_response):
    seen = {k: environ[k] for k in KEYS if k in environ}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]
