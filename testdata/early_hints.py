"""103 Early Hints from a WSGI app: environ["wsgi.early_hints"](headers).

/hints   two Link hints, then the response (without Link)
/bad     a hint with CR LF in it: ValueError, reported in the body
/late    hints after the body started: RuntimeError, reported in the body
"""

PRELOADS = [("Link", "</style.css>; rel=preload; as=style"), ("Link", "</app.js>; rel=preload; as=script")]


def application(environ, start_response):
    path = environ["PATH_INFO"]
    hints = environ["wsgi.early_hints"]
    if path == "/hints":
        hints(PRELOADS)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hinted"]
    if path == "/bad":
        try:
            hints([("Link", "</x>\r\nSet-Cookie: a=1")])
            answer = "sent"
        except ValueError as e:
            answer = "ValueError: %s" % e
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [answer.encode()]
    if path == "/late":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"started\n")
        try:
            hints(PRELOADS)
            return [b"sent"]
        except RuntimeError as e:
            return [("RuntimeError: %s" % e).encode()]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no route"]
