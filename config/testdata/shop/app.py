# The shop app of the config tests; its callable is not "application".
def app(environ, start_response):
    body = "shop script_name=%r path_info=%r\n" % (environ["SCRIPT_NAME"], environ["PATH_INFO"])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
