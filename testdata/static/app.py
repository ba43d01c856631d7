# The app behind the static files: it answers whatever reaches it with
# its PATH_INFO, so tests can tell the app's answers from Go's. The word
# below must never appear in a static response.
SECRET = "app-source-must-not-leak"


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("app:" + environ["PATH_INFO"]).encode("latin-1")]
