"""Django served over ASGI for asgi_frameworks_test.go.

It is the same Django project as testdata/djangoapp (settings djsite.settings:
Django's settings are process-wide, and frameworks_test.go serves djsite over
WSGI in the same test binary), found through Options.PythonPath. Only the
URLconf differs: the handler of asgi.py points each request at djasgi.urls,
whose views are async.
"""
