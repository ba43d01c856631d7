"""The app the soak and fault runs drive (soak/main.go), one route per
behaviour, chosen by PATH_INFO. The error routes mirror testdata/failing.py."""

import gc
import hashlib
import json
import sys
import time

closes = {}  # route -> how many times close() ran


def count_close(name):
    closes[name] = closes.get(name, 0) + 1


class Body:
    """A body iterable that counts its close() calls."""

    def __init__(self, name, chunks, fail_at=None, close_raises=False):
        self.name = name
        self.chunks = chunks
        self.fail_at = fail_at
        self.close_raises = close_raises

    def __iter__(self):
        for i, c in enumerate(self.chunks):
            if i == self.fail_at:
                raise RuntimeError("failed at chunk %d" % i)
            yield c

    def close(self):
        count_close(self.name)
        if self.close_raises:
            raise ValueError("close failed")


def ok(sr, ctype="text/plain"):
    sr("200 OK", [("Content-Type", ctype)])


def hello(environ, sr):
    ok(sr)
    return [b"Hello, world!"]


def blocks(environ, sr):
    gc.collect()
    ok(sr)
    return [str(sys.getallocatedblocks()).encode()]


def closes_route(environ, sr):
    ok(sr, "application/json")
    return [json.dumps(closes).encode()]


def upload(environ, sr):
    h = hashlib.sha256()
    n = 0
    inp = environ["wsgi.input"]
    while True:
        chunk = inp.read(65536)
        if not chunk:
            break
        n += len(chunk)
        h.update(chunk)
    ok(sr, "application/json")
    return [json.dumps({"sha256": h.hexdigest(), "bytes": n}).encode()]


def stream(environ, sr):
    """A first chunk, then 1 KiB every millisecond for at most 5 seconds:
    the client resets the connection after the first chunk."""
    ok(sr)

    def gen():
        try:
            yield b"first\n"
            for _ in range(5000):
                time.sleep(0.001)
                yield b"x" * 1024
        finally:
            count_close("stream")

    return gen()


def raise_before(environ, sr):
    raise ValueError("boom before start_response")


def raise_after_start(environ, sr):
    ok(sr)
    raise ValueError("boom after start_response")


def raise_mid_stream(environ, sr):
    ok(sr)
    return Body("raise-mid-stream", [b"first chunk\n", b"second"], fail_at=1)


def close_raises(environ, sr):
    ok(sr)
    return Body("close-raises", [b"body"], close_raises=True)


def exc_info_before_body(environ, sr):
    ok(sr)
    try:
        raise KeyError("handled")
    except KeyError:
        sr("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
    return Body("exc-info-before-body", [b"replaced"])


def exc_info_after_body(environ, sr):
    write = sr("200 OK", [("Content-Type", "text/plain")])
    write(b"already sent\n")
    try:
        raise KeyError("late")
    except KeyError:
        sr("500 Internal Server Error", [], sys.exc_info())  # re-raises
    return [b"unreachable"]


def return_int(environ, sr):
    ok(sr)
    return 42


ROUTES = {
    "/hello": hello,
    "/blocks": blocks,
    "/closes": closes_route,
    "/upload": upload,
    "/stream": stream,
    "/raise-before": raise_before,
    "/raise-after-start": raise_after_start,
    "/raise-mid-stream": raise_mid_stream,
    "/close-raises": close_raises,
    "/exc-info-before-body": exc_info_before_body,
    "/exc-info-after-body": exc_info_after_body,
    "/return-int": return_int,
}


def application(environ, start_response):
    route = ROUTES.get(environ["PATH_INFO"])
    if route is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no route"]
    return route(environ, start_response)
