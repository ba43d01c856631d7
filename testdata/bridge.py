"""Calls the host's Go functions through gohost; logs through logging."""

import json
import logging
import threading

import gohost
from gohost import ping

log = logging.getLogger("bridge.app")
log.warning("imported, ping says %s", ping())


def application(environ, start_response):
    path = environ["PATH_INFO"]
    try:
        if path == "/ping":
            result = gohost.ping()
        elif path == "/call":
            result = gohost.call("ping")
        elif path == "/echo":
            result = repr(
                gohost.echo(None, True, False, 0, -(2**63), 2**63 - 1, 1.5, "h\u00e9llo \u2603",
                            b"\x00\xff", [1, [2, []]], (3, 4), {"k": {"n": None}, "": 1})
            )
        elif path == "/overflow":
            result = gohost.echo(2**63)
        elif path == "/bad-arg":
            result = gohost.echo(object())
        elif path == "/bad-key":
            result = gohost.echo({1: 2})
        elif path == "/cycle":
            cyclic = []
            cyclic.append(cyclic)
            result = gohost.echo(cyclic)
        elif path == "/missing":
            result = gohost.nope()
        elif path == "/error":
            result = gohost.fail()
        elif path == "/panic":
            result = gohost.panics()
        elif path == "/bad-result":
            result = gohost.bad_result()
        elif path == "/context":
            result = gohost.request_value()
        elif path == "/wait":
            result = gohost.wait()
        elif path == "/thread":
            out = []
            t = threading.Thread(target=lambda: out.append(gohost.ping()))
            t.start()
            t.join()
            result = out[0]
        elif path == "/log":
            log.debug("debug record")
            log.info("info record")
            logging.getLogger("other").error("error record %d", 42)
            try:
                1 / 0
            except ZeroDivisionError:
                log.exception("with traceback")
            result = "logged"
        else:
            result = "no route"
    except Exception as e:
        result = "%s: %s" % (type(e).__name__, e)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(result).encode()]
