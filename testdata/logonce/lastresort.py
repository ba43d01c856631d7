"""dictConfig sets the root logger's level and no handler, which removes
every root handler: a record then has no handler and Python gives it to
logging.lastResort (stderr under other servers)."""

import logging

import dictconfig

dictconfig.configure(handlers={}, root={"level": "WARNING"})
log = logging.getLogger("logonce")
log.warning("import record")
application = dictconfig.app(log)
