# For the -workers tests: answers its version (tests rewrite it) and its
# worker's pid; /segv crashes the process in C, as a broken C extension
# would; /slow takes a second, having created the file named by
# $WSGI_TEST_STARTED so that the test knows it is in flight.
import ctypes
import os
import time

VERSION = "version 1"


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/segv":
        ctypes.string_at(0)
    if path == "/slow":
        marker = os.environ.get("WSGI_TEST_STARTED")
        if marker:
            open(marker, "w").close()
        time.sleep(1)
    body = "%s pid=%d worker=%s\n" % (VERSION, os.getpid(), os.environ.get("WSGI_WORKER_ID", ""))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
