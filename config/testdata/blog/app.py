# The blog app of the config tests: says who it is and where it is mounted.
def application(environ, start_response):
    body = "blog script_name=%r path_info=%r mode=%r\n" % (
        environ["SCRIPT_NAME"], environ["PATH_INFO"], environ.get("BLOG_MODE"))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
