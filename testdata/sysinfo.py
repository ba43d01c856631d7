import json
import sys
import threading


def application(environ, start_response):
    info = {
        "executable": sys.executable,
        "prefix": sys.prefix,
        "version": "%d.%d" % sys.version_info[:2],
        "thread": threading.current_thread().name,
        "loaded": " ".join(m for m in ("asyncio", "ssl") if m in sys.modules),
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(info).encode()]
