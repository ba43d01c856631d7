"""The app the Interpreters tests import in several sub-interpreters: one
route per behaviour that must work in each of them."""

import json
import logging
import sys
import time
import urllib.parse

import gohost

VERSION = 1  # the reload test rewrites this line

log = logging.getLogger("interp")


def interpreter():
    """The id of the interpreter running this code (0: the main one)."""
    try:
        import _interpreters  # 3.13

        return _interpreters.get_current()[0]
    except ImportError:
        return -1


def as_json(start_response, value):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(value).encode()]


def stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    for i in range(3):
        yield b"chunk %d\n" % i


def stream_of(value, start_response):
    """value as JSON from a generator (whose close() the server calls)."""
    start_response("200 OK", [("Content-Type", "application/json")])
    yield json.dumps(value).encode()


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    time.sleep(float(query.get("sleep", ["0"])[0]))
    if path == "/who":
        return as_json(start_response, {"interp": interpreter(), "version": VERSION})
    if path == "/stream":
        return stream(environ, start_response)
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]
    if path == "/gohost":
        return as_json(start_response, {"interp": interpreter(), "got": gohost.double(21)})
    if path == "/nested":
        # gohost.main_hello serves a request of a main-interpreter app
        # from Go, on this thread, while this request waits in the call.
        got = gohost.main_hello()
        return stream_of({"interp": interpreter(), "got": got}, start_response)
    if path == "/log":
        log.warning("from interpreter %d", interpreter())
        environ["wsgi.errors"].write("errors from interpreter %d\n" % interpreter())
        return as_json(start_response, {"interp": interpreter()})
    if path == "/spin":
        while True:  # until RequestTimeout interrupts it
            pass
    if path == "/cpu":
        n = 0
        for i in range(int(query.get("n", ["20000"])[0])):
            n += i * i
        return as_json(start_response, {"n": n})
    if path == "/blocks":
        return as_json(start_response, sys.getallocatedblocks())
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]
