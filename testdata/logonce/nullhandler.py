"""A library's logger with a NullHandler, as the logging HOWTO advises:
it emits nothing, so the records go to Go's slog."""

import logging

log = logging.getLogger("logonce")
log.addHandler(logging.NullHandler())
log.warning("import record")


def application(environ, start_response):
    log.warning("request record")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b""]
