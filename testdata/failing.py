"""Apps that break the WSGI contract or raise, one route per way, chosen by
PATH_INFO. /closes reports how many times each route's close() ran."""

import json
import sys
import urllib.parse

closes = {}


class Body:
    """A body iterable that counts close() calls per route."""

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
        closes[self.name] = closes.get(self.name, 0) + 1
        if self.close_raises:
            raise ValueError("close failed")


def unescape(s):
    """URL-decodes s, then applies Python escapes such as \\r and \\u2603."""
    return urllib.parse.unquote(s, encoding="latin-1").encode("latin-1").decode("unicode_escape")


def ok(sr):
    sr("200 OK", [("Content-Type", "text/plain")])


def route(path, environ, sr):
    if path == "/raise-before":
        raise ValueError("boom before start_response")
    if path == "/raise-after-start":
        ok(sr)
        raise ValueError("boom after start_response")
    if path == "/raise-first-chunk":
        ok(sr)
        return Body(path, [b"never"], fail_at=0)
    if path == "/raise-mid-stream":
        ok(sr)
        return Body(path, [b"first chunk\n", b"second"], fail_at=1)
    if path == "/empty-then-raise":
        ok(sr)
        return Body(path, [b"", b"x"], fail_at=1)
    if path == "/close-raises":
        ok(sr)
        return Body(path, [b"body"], close_raises=True)
    if path == "/return-none":
        ok(sr)
        return None
    if path == "/return-int":
        ok(sr)
        return 42
    if path == "/return-str":
        ok(sr)
        return "text"
    if path == "/return-bytes":
        ok(sr)
        return b"bytes"
    if path == "/yield-str":
        ok(sr)
        return Body(path, ["text"])
    if path == "/yield-str-later":
        ok(sr)
        return Body(path, [b"first\n", "second"])
    if path == "/list-with-str":
        ok(sr)
        return [b"a", "b"]
    if path == "/no-start-response":
        return Body(path, [b"body"])
    if path == "/no-start-empty":
        return []
    if path == "/twice":
        ok(sr)
        try:
            ok(sr)
        except Exception as e:
            return [("%s: %s" % (type(e).__name__, e)).encode()]
        return [b"second call accepted"]
    if path == "/exc-info-before-body":
        ok(sr)
        try:
            raise KeyError("handled")
        except KeyError:
            sr("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
        return Body(path, [b"replaced"])
    if path == "/exc-info-after-body":
        write = sr("200 OK", [("Content-Type", "text/plain")])
        write(b"already sent\n")
        try:
            raise KeyError("late")
        except KeyError:
            sr("500 Internal Server Error", [], sys.exc_info())  # re-raises
        return [b"unreachable"]
    if path == "/bad-status":
        status = unescape(environ["QUERY_STRING"])
        try:
            sr(status, [])
        except Exception as e:
            sr("200 OK", [])
            return Body(path, [("caught %s: %s" % (type(e).__name__, e)).encode()])
        return Body(path, [b"accepted"])
    if path == "/bytes-status":
        sr(b"200 OK", [])
        return [b"x"]
    if path == "/bad-header":
        # QUERY_STRING is "name=value" with escapes, e.g. X-A=b%0Dc
        name, _, value = environ["QUERY_STRING"].partition("=")
        name, value = unescape(name), unescape(value)
        sr("200 OK", [(name, value)])
        return Body(path, [b"accepted"])
    if path == "/non-latin1-header":
        sr("200 OK", [("X-Snowman", "\u2603")])
        return [b"x"]
    if path == "/header-not-tuple":
        sr("200 OK", [["X-A", "b"]])
        return [b"x"]
    if path == "/headers-not-list":
        sr("200 OK", (("X-A", "b"),))
        return [b"x"]
    if path == "/header-int-value":
        sr("200 OK", [("Content-Length", 5)])
        return [b"x"]
    if path == "/cl-short":
        sr("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return Body(path, [b"12345"])
    if path == "/cl-long":
        sr("200 OK", [("Content-Type", "text/plain"), ("content-length", "10")])
        return Body(path, [b"012345", b"6789ABCDE"])
    if path == "/cl-long-list":
        sr("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"0123456", b"789ABCDE"]
    if path == "/system-exit":
        raise SystemExit(7)
    if path == "/keyboard-interrupt":
        raise KeyboardInterrupt()
    if path == "/generator-exit":
        raise GeneratorExit()
    if path == "/system-exit-in-body":
        ok(sr)

        def gen():
            yield b"a"
            raise SystemExit(3)

        return gen()
    if path == "/write-str":
        write = sr("200 OK", [])
        write("text")
        return []
    if path == "/closes":
        ok(sr)
        return [json.dumps(closes).encode()]
    sr("404 Not Found", [])
    return [b"no route"]


def application(environ, start_response):
    return route(environ["PATH_INFO"], environ, start_response)
