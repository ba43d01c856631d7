"""basicConfig(filename=...): the app's file gets the records."""

import logging
import os
import tempfile

path = os.path.join(tempfile.mkdtemp(), "app.log")
logging.basicConfig(level=logging.INFO, filename=path)
log = logging.getLogger("logonce")
log.info("import record")


def application(environ, start_response):
    log.info("request record")
    for h in logging.getLogger().handlers:
        h.flush()
    start_response("200 OK", [("Content-Type", "text/plain")])
    with open(path, "rb") as f:
        return [f.read()]
