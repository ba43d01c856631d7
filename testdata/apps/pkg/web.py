"""A module inside a package: relative imports must work."""

from .helper import WORD


class Factory:
    @staticmethod
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [WORD.encode()]


factory = Factory()
