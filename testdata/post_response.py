"""Work an app does after its response: a WSGI body's close() (Flask's
call_on_close, Django's request_finished) runs once the client has the
whole response. Routes:

/fixed?d=S     a 13-byte body with Content-Length; close() sleeps S seconds
/stream?d=S    a generator body without Content-Length (chunked)
/raise         close() raises after the response
/spin?d=S      close() runs Python for S seconds (a RequestTimeout can
               interrupt it)
/report        what the close() calls saw, as JSON
/hello         13 bytes in a body whose close() does nothing (a benchmark)
"""

import contextvars
import json
import threading
import time

local = threading.local()
request_var = contextvars.ContextVar("request_var", default=None)
reports = []  # one dict per close()


def spin(end):
    while time.monotonic() < end:
        sum(range(100))


class Body:
    """A body whose close() sleeps, then records what it saw."""

    def __init__(self, chunks, delay, tag, mode="sleep"):
        self.chunks = chunks
        self.delay = delay
        self.tag = tag
        self.mode = mode

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        report = {"tag": self.tag, "started": time.time()}
        if self.mode == "raise":
            time.sleep(self.delay)
            reports.append(report)
            raise ValueError("close failed after the response")
        if self.mode == "spin":
            try:
                # The loop in a function of its own: CPython 3.13 may raise
                # an async exception (the RequestTimeout) at a loop's
                # backward jump as if it were outside the try around it
                # (python/cpython#139622; about 1 in 9 here); a call is
                # caught.
                spin(time.monotonic() + self.delay)
            except BaseException as e:
                report["interrupted"] = type(e).__name__
                reports.append(report)
                raise
        else:
            time.sleep(self.delay)
        report["local"] = getattr(local, "tag", None)
        report["contextvar"] = request_var.get()
        report["ended"] = time.time()
        reports.append(report)


class Closing:
    """A body with a close() that does nothing."""

    def __init__(self, body):
        self.body = body

    def __iter__(self):
        return iter((self.body,))

    def close(self):
        pass


def application(environ, start_response):
    if environ["PATH_INFO"] == "/hello":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
        return Closing(b"Hello, world!")
    path = environ["PATH_INFO"]
    query = dict(p.split("=", 1) for p in environ["QUERY_STRING"].split("&") if "=" in p)
    delay = float(query.get("d", "0"))
    tag = query.get("tag", path)
    local.tag = tag
    request_var.set(tag)
    if path == "/report":
        body = json.dumps(reports).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/fixed":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
        return Body([b"Hello, world!"], delay, tag)
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body([b"chunk 0\n", b"chunk 1\n", b"chunk 2\n"], delay, tag)
    if path == "/raise":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
        return Body([b"body"], delay, tag, mode="raise")
    if path == "/spin":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
        return Body([b"spin"], delay, tag, mode="spin")
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no route\n"]
