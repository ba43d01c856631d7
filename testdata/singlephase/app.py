"""Imports an extension module without multi-phase init (the pyenv
builds' _testsinglephase): it cannot be loaded in an isolated
sub-interpreter."""

import _testsinglephase  # noqa: F401


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"loaded\n"]
