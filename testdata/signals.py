"""Takes SIGTERM at import, as some apps do; tries again per request."""

import signal

seen = []


def on_term(signum, frame):
    seen.append(signum)


signal.signal(signal.SIGTERM, on_term)


def application(environ, start_response):
    try:
        signal.signal(signal.SIGTERM, on_term)
        result = b"handler installed"
    except ValueError as e:
        result = ("ValueError: %s" % e).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [result]
