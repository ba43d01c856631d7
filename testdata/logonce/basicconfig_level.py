"""basicConfig with a level and a format only: no handler of the app's own,
so the records go to Go's slog."""

import logging

logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s")
log = logging.getLogger("logonce")
log.info("import record")


def application(environ, start_response):
    log.info("request record")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b""]
