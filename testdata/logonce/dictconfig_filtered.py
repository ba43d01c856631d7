"""Django's default logging with DEBUG off: the console handler's filter
drops the records and the admins are mailed. Mail is not a log: the
records go to Go's slog too."""

import logging
import logging.handlers

import dictconfig


class MailAdmins(logging.handlers.SMTPHandler):
    def __init__(self):
        super().__init__("localhost", "server@example.com", ["admin@example.com"], "error")
        self.mailed = []

    def emit(self, record):
        self.mailed.append(record.getMessage())


dictconfig.configure(
    filters={"require_debug_true": {"name": "debug-only"}},  # a Filter passing no record of ours
    handlers={"console": {"class": "logging.StreamHandler", "filters": ["require_debug_true"]}},
    loggers={"logonce": {"handlers": ["console"], "level": "INFO"}},
)
mail = MailAdmins()
logging.getLogger("logonce").addHandler(mail)
log = logging.getLogger("logonce")
log.info("import record")
application = dictconfig.app(log)
