# For the admin endpoint tests: / answers at once with the worker id;
# /linger?S sleeps S seconds in linger_in_admin_test (the live view finds
# it there), having created the file named by $WSGI_TEST_STARTED; /boom
# raises.
import os
import time


def linger_in_admin_test(seconds):
    marker = os.environ.get("WSGI_TEST_STARTED")
    if marker:
        open(marker, "w").close()
    time.sleep(seconds)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise RuntimeError("boom for the admin test")
    if path == "/linger":
        linger_in_admin_test(float(environ.get("QUERY_STRING") or "1"))
    body = "worker=%s\n" % os.environ.get("WSGI_WORKER_ID", "")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
