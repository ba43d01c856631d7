"""Registers an atexit handler that appends to $WSGI_ATEXIT_FILE, so a
test can see when (and how often) the interpreter was finalized."""

import atexit
import os
import sys
import time


def _finalized():
    with open(os.environ["WSGI_ATEXIT_FILE"], "a") as f:
        f.write("atexit\n")


# Each Handler imports its own copy of this module: register once.
if not hasattr(sys, "_wsgi_test_atexit"):
    sys._wsgi_test_atexit = True
    atexit.register(_finalized)


def application(environ, start_response):
    if environ["PATH_INFO"] == "/sleep":
        time.sleep(float(environ["QUERY_STRING"] or 0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
