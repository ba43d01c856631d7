"""Django LOGGING with 'root': {'handlers': ['console']}."""

import logging

import dictconfig

dictconfig.configure(root={"handlers": ["console"], "level": "INFO"})
log = logging.getLogger("logonce")
log.info("import record")
application = dictconfig.app(log)
