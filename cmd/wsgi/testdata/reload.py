# Answers its version (the reload tests rewrite it) and raises on /raise,
# for the tracebacks in 500s.
def application(environ, start_response):
    if environ["PATH_INFO"] == "/raise":
        raise RuntimeError("boom from the app")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"version 1\n"]
