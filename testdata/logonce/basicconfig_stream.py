"""basicConfig(stream=...): the app's stream gets the records."""

import io
import logging

stream = io.StringIO()
logging.basicConfig(level=logging.INFO, stream=stream)
log = logging.getLogger("logonce")
log.info("import record")


def application(environ, start_response):
    log.info("request record")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [stream.getvalue().encode()]
