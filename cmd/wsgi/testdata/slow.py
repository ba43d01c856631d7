# Takes a second to answer, so a test can signal the server mid-request.
# It creates the file named by $WSGI_TEST_STARTED first, so the test knows
# the request is in flight.
import os
import time


def application(environ, start_response):
    marker = os.environ.get("WSGI_TEST_STARTED")
    if marker:
        open(marker, "w").close()
    time.sleep(1)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"slow done\n"]
