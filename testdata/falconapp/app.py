"""A small Falcon 3 app for frameworks_test.go (routes: see flaskapp/app.py).

Falcon has no URL builder: req.app is SCRIPT_NAME, the mount point.
"""

import hashlib
import threading

import falcon


class Hello:
    def on_get(self, req, resp, name):
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "Hello, %s!" % name


class Form:
    def on_post(self, req, resp):
        form = req.get_media()  # URLEncodedFormHandler
        colors = form.get("color", [])
        if isinstance(colors, str):
            colors = [colors]
        resp.media = {"name": form["name"], "colors": colors}


class JSONSum:
    def on_post(self, req, resp):
        data = req.get_media()
        numbers = data["numbers"]
        resp.media = {"sum": sum(numbers), "count": len(numbers), "label": data["label"]}


class CookiesSet:
    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "cookies set"
        # Falcon marks cookies Secure by default; the test server is plain HTTP.
        resp.set_cookie("flavor", "chocolate", path="/", secure=False, http_only=False)
        resp.set_cookie("size", "large", path="/", secure=False)


class CookiesRead:
    def on_get(self, req, resp):
        resp.media = dict(req.cookies)


class Redirect:
    def on_get(self, req, resp):
        raise falcon.HTTPFound(req.app + "/hello/world")


class Upload:
    def on_post(self, req, resp):
        out = {}
        for part in req.get_media():  # MultipartFormHandler
            if part.name == "file":
                data = part.stream.read()
                out["sha256"] = hashlib.sha256(data).hexdigest()
                out["size"] = len(data)
                out["filename"] = part.filename
            elif part.name == "note":
                out["note"] = part.text
        resp.media = out


class Stream:
    def on_get(self, req, resp):
        n = req.get_param_as_int("n", default=5)

        def generate():
            for i in range(n):
                yield ("chunk %d: %s\n" % (i, chr(ord("a") + i % 26) * 1000)).encode()

        resp.content_type = falcon.MEDIA_TEXT
        resp.stream = generate()


class URLs:
    def on_get(self, req, resp):
        resp.media = {"hello": req.app + "/hello/world", "external": req.prefix + "/hello/world"}


class WhoAmI:
    def on_get(self, req, resp):
        resp.media = {
            "user": req.env.get("REMOTE_USER"),
            "tenant": req.env.get("X_TENANT"),
            "script_name": req.app,
        }


_gates = {}
_gates_lock = threading.Lock()


def _gate(token):
    with _gates_lock:
        return _gates.setdefault(token, threading.Event())


class Gated:
    def on_get(self, req, resp):
        gate = _gate(req.get_param("token", required=True))

        def generate():
            yield b"first\n"
            yield b"second\n" if gate.wait(5) else b"timeout\n"

        resp.content_type = falcon.MEDIA_TEXT
        resp.stream = generate()


class Release:
    def on_get(self, req, resp):
        _gate(req.get_param("token", required=True)).set()
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "released"


app = falcon.App()
app.add_route("/hello/{name}", Hello())
app.add_route("/form", Form())
app.add_route("/json", JSONSum())
app.add_route("/cookies/set", CookiesSet())
app.add_route("/cookies/read", CookiesRead())
app.add_route("/redirect", Redirect())
app.add_route("/upload", Upload())
app.add_route("/stream", Stream())
app.add_route("/urls", URLs())
app.add_route("/whoami", WhoAmI())
app.add_route("/gated", Gated())
app.add_route("/release", Release())
