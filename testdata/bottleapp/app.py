"""A small Bottle app for frameworks_test.go (routes: see flaskapp/app.py)."""

import hashlib
import threading

import bottle
from bottle import request, response

app = bottle.Bottle()


@app.get("/hello/<name>", name="hello")
def hello(name):
    response.content_type = "text/plain"
    return "Hello, %s!" % name


@app.post("/form")
def form():
    # decode(): Bottle keeps form values as latin-1 str unless asked.
    forms = request.forms.decode()
    return {"name": forms.get("name"), "colors": forms.getall("color")}


@app.post("/json")
def json_sum():
    data = request.json
    numbers = data["numbers"]
    return {"sum": sum(numbers), "count": len(numbers), "label": data["label"]}


@app.get("/cookies/set")
def cookies_set():
    response.content_type = "text/plain"
    response.set_cookie("flavor", "chocolate", path="/")
    response.set_cookie("size", "large", path="/", httponly=True)
    return "cookies set"


@app.get("/cookies/read")
def cookies_read():
    return dict(request.cookies)


@app.get("/redirect")
def go():
    bottle.redirect(app.get_url("hello", name="world"), 302)


@app.post("/upload")
def upload():
    f = request.files.get("file")
    data = f.file.read()
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "filename": f.raw_filename,
        # Bottle 0.12 decodes multipart fields as UTF-8 already (unlike
        # urlencoded ones), so no getunicode/decode here.
        "note": request.forms.get("note"),
    }


@app.get("/stream")
def stream():
    n = int(request.query.get("n", "5"))
    response.content_type = "text/plain"

    def generate():
        for i in range(n):
            yield "chunk %d: %s\n" % (i, chr(ord("a") + i % 26) * 1000)

    return generate()


@app.get("/urls")
def urls():
    return {
        "hello": app.get_url("hello", name="world"),
        "external": request.urlparts.scheme
        + "://"
        + request.urlparts.netloc
        + app.get_url("hello", name="world"),
    }


@app.get("/whoami")
def whoami():
    return {
        "user": request.environ.get("REMOTE_USER"),
        "tenant": request.environ.get("X_TENANT"),
        "script_name": request.script_name.rstrip("/"),
    }


_gates = {}
_gates_lock = threading.Lock()


def _gate(token):
    with _gates_lock:
        return _gates.setdefault(token, threading.Event())


@app.get("/gated")
def gated():
    gate = _gate(request.query["token"])
    response.content_type = "text/plain"

    def generate():
        yield "first\n"
        yield "second\n" if gate.wait(5) else "timeout\n"

    return generate()


@app.get("/release")
def release():
    _gate(request.query["token"]).set()
    response.content_type = "text/plain"
    return "released"
