"""One route per WSGI behaviour the Go tests check, chosen by PATH_INFO."""

import contextvars
import hashlib
import io
import json
import sys
import threading
import time
import urllib.parse

closes = {}  # route -> how many times close() ran
kept = {}  # objects kept past their request
local = threading.local()
request_var = contextvars.ContextVar("request_var", default=None)


def ok(start_response, body, ctype="text/plain"):
    start_response("200 OK", [("Content-Type", ctype)])
    return [body]


def as_json(start_response, value):
    return ok(start_response, json.dumps(value).encode(), "application/json")


class Closing:
    """An iterable that counts its close() calls."""

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


def environ_route(environ, start_response):
    out = {}
    for k, v in environ.items():
        if isinstance(v, str):
            out[k] = v
        else:
            out[k] = "<%s>" % type(v).__name__
    out["wsgi.version"] = list(environ["wsgi.version"])
    out["PATH_INFO_BYTES"] = environ["PATH_INFO"].encode("latin-1").hex()
    for k in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once", "wsgi.input_terminated"):
        out[k] = environ[k]
    return as_json(start_response, out)


def input_route(environ, start_response):
    """Replays the read operations given in the query string, e.g.
    ops=read:3,readline,readline:2,readlines,iter,read:-1,read:None."""
    inp = environ["wsgi.input"]
    results = []
    for op in environ["QUERY_STRING"].split("ops=", 1)[1].split(","):
        name, _, arg = op.partition(":")
        args = []
        if arg:
            args = [None if arg == "None" else int(arg)]
        if name == "iter":
            results.append([c.hex() for c in inp])
        elif name == "readlines":
            results.append([c.hex() for c in inp.readlines(*args)])
        else:
            results.append(getattr(inp, name)(*args).hex())
    return as_json(start_response, results)


def upload_route(environ, start_response):
    h = hashlib.sha256()
    n = 0
    inp = environ["wsgi.input"]
    while True:
        chunk = inp.read(65536)
        if not chunk:
            break
        n += len(chunk)
        h.update(chunk)
    return as_json(start_response, {"sha256": h.hexdigest(), "bytes": n})


def echo_route(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body]


def respond_then_read_route(environ, start_response):
    """Starts the response, then reads the body (full duplex)."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"started\n")
    data = environ["wsgi.input"].read()
    return [("read %d bytes, sha256 %s" % (len(data), hashlib.sha256(data).hexdigest())).encode()]


def read_error_route(environ, start_response):
    try:
        environ["wsgi.input"].read()
    except OSError as e:
        return ok(start_response, ("OSError: %s" % e).encode())
    except Exception as e:
        return ok(start_response, ("%s: %s" % (type(e).__name__, e)).encode())
    return ok(start_response, b"no error")


gate = threading.Event()


def gated_route(environ, start_response):
    """Yields one chunk, then waits for /open-gate: the first chunk must
    reach the client while the generator is still running."""
    gate.clear()
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"before gate\n"
        yield b"after gate\n" if gate.wait(5) else b"gate timed out\n"

    return gen()


def open_gate_route(environ, start_response):
    gate.set()
    return ok(start_response, b"opened")


def endless_route(environ, start_response):
    """Streams until the client goes away; counts close()."""
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        try:
            while True:
                yield b"x" * 1024
                time.sleep(0.001)
        finally:
            closes["endless"] = closes.get("endless", 0) + 1

    return gen()


def input_compare_route(environ, start_response):
    """Runs the read operations of the query string on wsgi.input and on
    io.BytesIO over the same bytes (sent hex-encoded in X-Body) and reports
    the first difference."""
    want = io.BytesIO(bytes.fromhex(environ.get("HTTP_X_BODY", "")))
    got = environ["wsgi.input"]
    for op in environ["QUERY_STRING"].split("ops=", 1)[1].split(","):
        name, _, arg = op.partition(":")
        args = [None if arg == "None" else int(arg)] if arg else []
        if name == "iter":
            g, w = list(got), list(want)
        else:
            g, w = getattr(got, name)(*args), getattr(want, name)(*args)
        if g != w:
            return as_json(start_response, {"op": op, "got": repr(g), "want": repr(w)})
    return as_json(start_response, "match")


def stream_route(environ, start_response):
    q = dict(p.split("=") for p in environ["QUERY_STRING"].split("&") if "=" in p)
    n = int(q.get("n", "5"))
    delay = float(q.get("delay", "0"))
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        try:
            for i in range(n):
                if delay and i:
                    time.sleep(delay)
                yield b"chunk %d\n" % i
        finally:
            closes["stream"] = closes.get("stream", 0) + 1

    return gen()


def write_route(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"from write; ")
    return Closing("write", [b"then iterable"])


def head_route(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing("head", [b"body for GET"])


def status_route(environ, start_response):
    code = urllib.parse.unquote(environ["QUERY_STRING"])
    start_response(code, [])
    return Closing("status", [b"body"])


def threads_route(environ, start_response):
    """Checks all Python work of one request runs on one thread state."""
    request_var.set(environ["QUERY_STRING"])
    local.value = environ["QUERY_STRING"]
    ident = threading.get_ident()
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        for _ in range(3):
            time.sleep(0.005)  # let other requests run in between
            same = (
                threading.get_ident() == ident
                and local.value == environ["QUERY_STRING"]
                and request_var.get() == environ["QUERY_STRING"]
            )
            yield b"same " if same else b"DIFFERENT "

    return gen()


def log_route(environ, start_response):
    err = environ["wsgi.errors"]
    err.write("first line\nsecond ")
    err.writelines(["line\n", "no newline at end"])
    err.flush()
    return ok(start_response, b"logged")


def keep_route(environ, start_response):
    kept["start_response"] = start_response
    kept["write"] = start_response("200 OK", [("Content-Type", "text/plain")])
    kept["input"] = environ["wsgi.input"]
    kept["errors"] = environ["wsgi.errors"]
    return [b"kept"]


def use_kept_route(environ, start_response):
    results = {}
    for name, call in (
        ("start_response", lambda: kept["start_response"]("200 OK", [])),
        ("write", lambda: kept["write"](b"x")),
        ("input", lambda: kept["input"].read()),
        ("errors", lambda: kept["errors"].write("x")),
    ):
        try:
            call()
            results[name] = "no error"
        except Exception as e:
            results[name] = "%s: %s" % (type(e).__name__, e)
    return as_json(start_response, results)


def blocks_route(environ, start_response):
    """Python's allocated memory blocks, after a collection."""
    import gc

    gc.collect()
    return as_json(start_response, sys.getallocatedblocks())


def closes_route(environ, start_response):
    return as_json(start_response, closes)


def spin_route(environ, start_response):
    """Busy Python: only an interrupt stops it."""
    try:
        while True:
            pass
    except BaseException as e:
        closes["spin"] = type(e).__name__
        raise


def sleep_route(environ, start_response):
    time.sleep(float(environ["QUERY_STRING"] or "0.2"))
    return ok(start_response, b"slept")


def file_route(environ, start_response):
    path = environ["QUERY_STRING"]
    f = open(path, "rb")
    f.read(3)  # the wrapper must start where the file object stands
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](f, 4096)


def file_length_route(environ, start_response):
    path = environ["QUERY_STRING"]
    f = open(path, "rb")
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", "10")])
    return environ["wsgi.file_wrapper"](f)


def bytesio_wrapper_route(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return environ["wsgi.file_wrapper"](io.BytesIO(b"not a real file " * 1000), 1000)


def big_list_route(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [b"a" * 40000, b"b" * 40000]


def tuple_route(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return (b"tu", b"ple")


def empty_route(environ, start_response):
    start_response("200 OK", [])
    return []


def cookies_route(environ, start_response):
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/")],
    )
    return [b"cookies"]


def lazy_start_route(environ, start_response):
    def gen():
        yield b""
        start_response("201 Created", [("Content-Type", "text/plain")])
        yield b"late start"

    return gen()


ROUTES = {
    "/environ": environ_route,
    "/input": input_route,
    "/upload": upload_route,
    "/echo": echo_route,
    "/read-error": read_error_route,
    "/respond-then-read": respond_then_read_route,
    "/stream": stream_route,
    "/gated": gated_route,
    "/open-gate": open_gate_route,
    "/endless": endless_route,
    "/input-compare": input_compare_route,
    "/write": write_route,
    "/head": head_route,
    "/status": status_route,
    "/threads": threads_route,
    "/log": log_route,
    "/keep": keep_route,
    "/use-kept": use_kept_route,
    "/closes": closes_route,
    "/blocks": blocks_route,
    "/sleep": sleep_route,
    "/spin": spin_route,
    "/file": file_route,
    "/file-length": file_length_route,
    "/bytesio-wrapper": bytesio_wrapper_route,
    "/big-list": big_list_route,
    "/tuple": tuple_route,
    "/empty": empty_route,
    "/cookies": cookies_route,
    "/lazy-start": lazy_start_route,
}


def application(environ, start_response):
    # Route on the first path segment, so /environ/anything reaches /environ.
    route = ROUTES.get("/" + environ["PATH_INFO"].split("/", 2)[1] if environ["PATH_INFO"] else "")
    if route is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no route " + environ["PATH_INFO"].encode("latin-1")]
    return route(environ, start_response)
