def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    who = "%s (%s)" % (environ.get("REMOTE_USER", "nobody"), environ.get("AUTH_TYPE", "-"))
    return [who.encode()]
