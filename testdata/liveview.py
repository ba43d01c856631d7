"""A WSGI app for the live view tests: GET /linger?S waits up to S seconds
in linger_in_wsgi_view (until GET /release), so that a snapshot finds it
there; other paths answer at once."""

import threading

released = threading.Event()


def linger_in_wsgi_view(seconds):
    released.wait(seconds)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/release":
        released.set()
    elif path == "/reset":
        released.clear()
    elif path.startswith("/linger"):
        linger_in_wsgi_view(float(environ.get("QUERY_STRING") or "5"))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"done\n"]
