"""Logs as Radicale does: basicConfig(handlers=[h]) where h writes to the
current request's wsgi.errors, or to its own stream outside a request."""

import io
import logging
import threading

fallback = io.StringIO()  # stands for sys.stderr, so that the test sees it


class ThreadedStreamHandler(logging.Handler):
    def __init__(self):
        super().__init__()
        self.streams = threading.local()

    def emit(self, record):
        stream = getattr(self.streams, "stream", None) or fallback
        stream.write(self.format(record) + "\n")
        stream.flush()


handler = ThreadedStreamHandler()
logging.basicConfig(format="[%(thread)x] %(levelname)s: %(message)s", handlers=[handler])
log = logging.getLogger("logonce")
logging.getLogger().setLevel(logging.INFO)
log.info("import record")


def application(environ, start_response):
    handler.streams.stream = environ["wsgi.errors"]
    try:
        log.info("request record")
    finally:
        handler.streams.stream = None
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [fallback.getvalue().encode()]
