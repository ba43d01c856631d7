"""Django LOGGING with a handler on a named logger that does not propagate."""

import logging

import dictconfig

dictconfig.configure(loggers={"logonce": {"handlers": ["console"], "level": "INFO", "propagate": False}})
log = logging.getLogger("logonce.views")
log.info("import record")
application = dictconfig.app(log)
