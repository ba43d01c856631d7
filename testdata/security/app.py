"""Routes for security_test.go: one per case of SECURITY.md that the other
test apps do not reach, chosen by the first segment of PATH_INFO. /state
reports what the routes recorded (close() counts, errors seen, ...)."""

import json
import sys
import threading
import time
import tracemalloc
import urllib.parse

state = {}  # what the routes saw, for /state
lock = threading.Lock()


def bump(key, by=1):
    with lock:
        state[key] = state.get(key, 0) + by


def ok(start_response, body, ctype="text/plain"):
    start_response("200 OK", [("Content-Type", ctype)])
    return [body]


def as_json(start_response, value):
    return ok(start_response, json.dumps(value).encode(), "application/json")


def query(environ):
    return dict(urllib.parse.parse_qsl(environ["QUERY_STRING"]))


class Counted:
    """A body iterable that counts its close() calls under state["close:<name>"]."""

    def __init__(self, name, chunks, fail_at=None, close_raises=False, before=None):
        self.name = name
        self.chunks = chunks
        self.fail_at = fail_at
        self.close_raises = close_raises
        self.before = before  # called before the first chunk

    def __iter__(self):
        if self.before is not None:
            self.before()
        for i, c in enumerate(self.chunks):
            if i == self.fail_at:
                raise RuntimeError("failed at chunk %d" % i)
            yield c

    def close(self):
        bump("close:" + self.name)
        if self.close_raises:
            raise ValueError("close of %s failed" % self.name)


def environ_route(environ, start_response):
    out = {k: v for k, v in environ.items() if isinstance(v, str)}
    out["PATH_INFO_BYTES"] = environ["PATH_INFO"].encode("latin-1").hex()
    out["wsgi.input_terminated"] = environ["wsgi.input_terminated"]
    inp = environ["wsgi.input"]
    body = inp.read()
    out["body"] = body.decode("latin-1")
    out["after_eof"] = [inp.read().hex(), inp.read(10).hex(), inp.readline().hex()]
    return as_json(start_response, out)


def late_read_route(environ, start_response):
    """Waits, then reads: 100 Continue must go out only now."""
    time.sleep(float(query(environ).get("delay", "0.3")))
    body = environ["wsgi.input"].read()
    return ok(start_response, b"read " + body)


def read_huge_route(environ, start_response):
    """read(1 << 40) on a small body: what came back and the peak of
    Python's allocations meanwhile."""
    inp = environ["wsgi.input"]
    tracemalloc.start()
    try:
        data = inp.read(1 << 40)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return as_json(start_response, {"len": len(data), "peak": peak, "rest": inp.read(1 << 40).hex()})


def read_over_route(environ, start_response):
    """Asks for far more than CONTENT_LENGTH, by read and by readline."""
    inp = environ["wsgi.input"]
    first = inp.readline(1 << 30)
    rest = inp.read(1 << 20)
    return as_json(start_response, {"first": first.decode("latin-1"), "rest": rest.decode("latin-1"),
                                    "then": inp.read(5).hex()})


def record_read_route(environ, start_response):
    """Reads the whole body and records how that ended."""
    try:
        data = environ["wsgi.input"].read()
        state["record-read"] = "returned %d bytes" % len(data)
    except BaseException as e:
        state["record-read"] = "raised"
        state["record-read-type"] = type(e).__name__
        state["record-read-oserror"] = isinstance(e, OSError)
        state["record-read-msg"] = str(e)
    return ok(start_response, b"done")


def bg_write_route(environ, start_response):
    """Keeps write, wsgi.input and wsgi.errors and uses them from a thread of
    its own while the request runs and after it ended."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    inp, errors = environ["wsgi.input"], environ["wsgi.errors"]
    started = threading.Event()
    n = int(query(environ).get("n", "200"))

    def worker():
        results = {}
        started.set()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            for name, call in (("write", lambda: write(b"t")), ("input", lambda: inp.read(1)),
                               ("errors", lambda: errors.write("bg\n"))):
                try:
                    call()
                    results[name + ":ok"] = results.get(name + ":ok", 0) + 1
                except Exception as e:
                    key = "%s:%s" % (name, type(e).__name__)
                    results[key] = results.get(key, 0) + 1
                    results[name + ":last"] = str(e)
            if all(results.get(k + ":ValueError") for k in ("write", "input", "errors")):
                break
            time.sleep(0)
        state["bg"] = results

    t = threading.Thread(target=worker)
    t.start()
    started.wait()
    state["bg-thread"] = t

    def gen():
        for i in range(n):
            yield b"m"
        state["bg-request-done"] = True

    return gen()


def bg_result_route(environ, start_response):
    t = state.pop("bg-thread", None)
    if t is not None:
        t.join(5)
    return as_json(start_response, state.get("bg"))


def dup_length_route(environ, start_response):
    start_response("200 OK", [("content-length", "5"), ("Content-Type", "text/plain"),
                              ("CONTENT-LENGTH", "5"), ("Content-Length", "005")])
    return [b"hello"]


def cookies_route(environ, start_response):
    start_response("200 OK", [("Set-Cookie", "first=1; Path=/"), ("Content-Type", "text/plain"),
                              ("X-Between", "x"), ("set-cookie", "second=2; HttpOnly"),
                              ("Set-Cookie", "third=3")])
    return [b"cookies"]


def slow_stream_route(environ, start_response):
    """Yields a chunk every 50 ms, for ever, counting next() calls; the
    finally records when close() ran."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    state["slow-next"] = 0
    state.pop("slow-closed-at", None)

    def gen():
        try:
            while True:
                state["slow-next"] += 1
                yield b"s" * 512
                time.sleep(0.05)
        finally:
            state["slow-closed-at"] = time.monotonic()

    return gen()


def now_route(environ, start_response):
    return as_json(start_response, time.monotonic())


def close_route(environ, start_response):
    """close() on every path; the second segment picks the path."""
    how = environ["PATH_INFO"].split("/")[2]
    if how == "normal":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Counted(how, [b"a", b"b"])
    if how == "list-like":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Counted(how, [b"one"])
    if how == "raise-next":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Counted(how, [b"never"], fail_at=0)
    if how == "raise-next-later":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Counted(how, [b"first", b"never"], fail_at=1)
    if how == "bad-start":
        # start_response raises inside the iteration: the body was already
        # returned, so its close() must still run.
        return Counted(how, [b"x"], before=lambda: start_response("200 OK", [("X-Bad", "a\r\nb")]))
    if how == "bad-start-caught":
        def before():
            try:
                start_response("200 OK", [("Bad Name", "v")])
            except ValueError:
                start_response("200 OK", [("Content-Type", "text/plain")])
        return Counted(how, [b"recovered"], before=before)
    if how == "head":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Counted(how, [b"body", b" for GET"])
    if how == "write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return Counted(how, [b"then yielded"])
    if how == "write-only":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written only")
        return Counted(how, [])
    if how == "close-raises":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Counted(how, [b"body"], close_raises=True)
    if how == "gone":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def endless():
            while True:
                yield b"g" * 1024
                time.sleep(0.001)
        return Counted(how, endless())
    if how == "no-start":
        return Counted(how, [b"x"])
    if how == "exc-info":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def before():
            try:
                raise KeyError("handled")
            except KeyError:
                start_response("502 Bad Gateway", [("Content-Type", "text/plain")], sys.exc_info())
        return Counted(how, [b"replaced"], before=before)
    start_response("404 Not Found", [])
    return [b"no such close path"]


def raise_in_body_route(environ, start_response):
    """The body raises BaseException subclasses before its first chunk."""
    kind = query(environ)["type"]
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        if kind == "GeneratorExit":
            raise GeneratorExit()
        if kind == "KeyboardInterrupt":
            raise KeyboardInterrupt()
        if kind == "SystemExit":
            raise SystemExit(9)
        yield b"unreachable"

    return gen()


def spin_route(environ, start_response):
    while True:
        pass


def sleep_route(environ, start_response):
    time.sleep(float(query(environ).get("s", "0.2")))
    return ok(start_response, b"slept")


def hello_route(environ, start_response):
    return ok(start_response, b"hello")


def state_route(environ, start_response):
    return as_json(start_response, {k: v for k, v in state.items() if isinstance(v, (int, float, str, bool, dict, type(None)))})


def reset_route(environ, start_response):
    state.clear()
    return ok(start_response, b"reset")


ROUTES = {
    "environ": environ_route,
    "late-read": late_read_route,
    "read-huge": read_huge_route,
    "read-over": read_over_route,
    "record-read": record_read_route,
    "bg-write": bg_write_route,
    "bg-result": bg_result_route,
    "dup-length": dup_length_route,
    "cookies": cookies_route,
    "slow-stream": slow_stream_route,
    "now": now_route,
    "close": close_route,
    "raise-in-body": raise_in_body_route,
    "spin": spin_route,
    "sleep": sleep_route,
    "hello": hello_route,
    "state": state_route,
    "reset": reset_route,
}


def application(environ, start_response):
    parts = environ["PATH_INFO"].split("/")
    route = ROUTES.get(parts[1] if len(parts) > 1 else "")
    if route is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no route"]
    return route(environ, start_response)
