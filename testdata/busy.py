"""Each request holds the GIL for BUSY_MS of pure Python (fairness_test.go)."""
import time

BUSY_MS = 2


def app(environ, start_response):
    end = time.perf_counter() + BUSY_MS / 1000
    while time.perf_counter() < end:
        pass
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"done"]
