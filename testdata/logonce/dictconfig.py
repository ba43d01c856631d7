"""Configures logging as Django's LOGGING does, with a StreamHandler on
sys.stderr; the apps of this directory differ in where it is attached."""

import io
import logging.config
import sys

# Stands for sys.stderr, so that the test sees what the handler wrote.
stderr = io.StringIO()


def configure(**config):
    config.setdefault("version", 1)
    config.setdefault("disable_existing_loggers", False)
    config.setdefault("handlers", {"console": {"class": "logging.StreamHandler"}})
    saved, sys.stderr = sys.stderr, stderr
    try:
        logging.config.dictConfig(config)  # "console" writes to sys.stderr as it is now
    finally:
        sys.stderr = saved


def app(log):
    def application(environ, start_response):
        log.warning("request record")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [stderr.getvalue().encode()]

    return application
