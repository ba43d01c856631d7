"""An app that configures logging the usual way."""

import logging

logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s")
logging.getLogger("cfg").info("configured")


def application(environ, start_response):
    logging.getLogger("cfg").info("in request")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(len(logging.getLogger().handlers)).encode()]
