# Echoes where the request landed, for the mounting tests.
def application(environ, start_response):
    body = "hello script_name=%r path_info=%r\n" % (environ["SCRIPT_NAME"], environ["PATH_INFO"])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
