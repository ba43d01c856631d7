"""Plain WSGI workloads of the side-by-side benchmark, chosen by PATH_INFO.

/         hello: 13 bytes
/echo     the request body (64 KiB in the benchmark) read and returned
/1m       a 1 MiB response
/file     the file named by $BENCH_FILE (10 MiB) through wsgi.file_wrapper
/stream   a 100-chunk generator
"""

import os

HELLO = b"Hello, world!"
BIG = bytes(range(256)) * 4096  # 1 MiB
CHUNKS = [b"chunk %d\n" % i for i in range(100)]
FILE = os.environ.get("BENCH_FILE", "")


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [HELLO]


def echo(environ, start_response):
    n = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(n)
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
    return [body]


def big(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(BIG)))])
    return [BIG]


def file(environ, start_response):
    f = open(FILE, "rb")
    size = os.fstat(f.fileno()).st_size
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))])
    return environ["wsgi.file_wrapper"](f, 1 << 16)


def stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return (c for c in CHUNKS)


def not_found(environ, start_response):
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"not found"]


ROUTES = {"/": hello, "/echo": echo, "/1m": big, "/file": file, "/stream": stream}


def app(environ, start_response):
    return ROUTES.get(environ.get("PATH_INFO", ""), not_found)(environ, start_response)


application = app
