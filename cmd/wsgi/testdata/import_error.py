# Imports a module that does not exist: the command must refuse to start.
import wsgi_test_no_such_module  # noqa: F401


def application(environ, start_response):
    return []
