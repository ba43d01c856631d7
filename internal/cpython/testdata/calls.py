"""Calls every host callback once and reports what each raised."""


def application(environ, start_response):
    results = []

    def attempt(name, fn):
        try:
            fn()
            results.append("%s ok" % name)
        except Exception as e:
            results.append("%s %s: %s" % (name, type(e).__name__, e))

    write = []
    attempt("start_response", lambda: write.append(start_response("200 OK", [("X-A", "b")])))
    if write:
        attempt("write", lambda: write[0](b"data"))
    attempt("read", lambda: environ["wsgi.input"].read(3))

    def take():  # a read whose bytes Go puts straight into the result
        got = environ["wsgi.input"].read(5)
        assert got == b"hello", got

    attempt("take", take)
    attempt("errors", lambda: environ["wsgi.errors"].write("line\n"))
    attempt("early_hints", lambda: environ["wsgi.early_hints"]([("Link", "</a.css>; rel=preload")]))
    return ["\n".join(results).encode()]
