"""A small Pyramid 2 app for frameworks_test.go (routes: see flaskapp/app.py)."""

import hashlib
import threading

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPFound
from pyramid.response import Response


def hello(request):
    return Response("Hello, %s!" % request.matchdict["name"], content_type="text/plain")


def form(request):
    return {"name": request.POST["name"], "colors": request.POST.getall("color")}


def json_sum(request):
    data = request.json_body
    numbers = data["numbers"]
    return {"sum": sum(numbers), "count": len(numbers), "label": data["label"]}


def cookies_set(request):
    resp = Response("cookies set", content_type="text/plain")
    resp.set_cookie("flavor", "chocolate", path="/")
    resp.set_cookie("size", "large", path="/", httponly=True)
    return resp


def cookies_read(request):
    return dict(request.cookies)


def go(request):
    return HTTPFound(location=request.route_url("hello", name="world"))


def upload(request):
    f = request.POST["file"]
    data = f.file.read()
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "filename": f.filename,
        "note": request.POST["note"],
    }


def stream(request):
    n = int(request.GET.get("n", "5"))

    def generate():
        for i in range(n):
            yield ("chunk %d: %s\n" % (i, chr(ord("a") + i % 26) * 1000)).encode()

    return Response(app_iter=generate(), content_type="text/plain")


def urls(request):
    return {
        "hello": request.route_path("hello", name="world"),
        "external": request.route_url("hello", name="world"),
    }


def whoami(request):
    return {
        "user": request.environ.get("REMOTE_USER"),
        "tenant": request.environ.get("X_TENANT"),
        "script_name": request.script_name,
    }


_gates = {}
_gates_lock = threading.Lock()


def _gate(token):
    with _gates_lock:
        return _gates.setdefault(token, threading.Event())


def gated(request):
    gate = _gate(request.GET["token"])

    def generate():
        yield b"first\n"
        yield b"second\n" if gate.wait(5) else b"timeout\n"

    return Response(app_iter=generate(), content_type="text/plain")


def release(request):
    _gate(request.GET["token"]).set()
    return Response("released", content_type="text/plain")


def make_app():
    with Configurator() as config:
        routes = [
            ("hello", "/hello/{name}", hello, "GET", None),
            ("form", "/form", form, "POST", "json"),
            ("json", "/json", json_sum, "POST", "json"),
            ("cookies_set", "/cookies/set", cookies_set, "GET", None),
            ("cookies_read", "/cookies/read", cookies_read, "GET", "json"),
            ("redirect", "/redirect", go, "GET", None),
            ("upload", "/upload", upload, "POST", "json"),
            ("stream", "/stream", stream, "GET", None),
            ("urls", "/urls", urls, "GET", "json"),
            ("whoami", "/whoami", whoami, "GET", "json"),
            ("gated", "/gated", gated, "GET", None),
            ("release", "/release", release, "GET", None),
        ]
        for name, pattern, view, method, renderer in routes:
            config.add_route(name, pattern)
            config.add_view(view, route_name=name, request_method=method, renderer=renderer)
        return config.make_wsgi_app()


app = make_app()
