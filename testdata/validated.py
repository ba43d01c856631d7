"""The behave app wrapped in wsgiref.validate.validator: any PEP 3333
violation by the server (or the app) raises, and is reported at
/violations together with errors raised where they cannot propagate
(an iterator garbage-collected without close(), for example)."""

import gc
import json
import sys
import warnings
from wsgiref.validate import WSGIWarning, validator

import behave

warnings.simplefilter("error", WSGIWarning)
violations = []
_previous_hook = sys.unraisablehook


def _record_unraisable(unraisable):
    violations.append("%s: %s" % (unraisable.exc_type.__name__, unraisable.exc_value))
    _previous_hook(unraisable)


sys.unraisablehook = _record_unraisable
checked = validator(behave.application)


def application(environ, start_response):
    if environ["PATH_INFO"] == "/violations":
        gc.collect()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(violations).encode()]
    try:
        return checked(environ, start_response)
    except AssertionError as e:
        violations.append("AssertionError: %s" % e)
        raise
