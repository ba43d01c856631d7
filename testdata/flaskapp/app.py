"""A small Flask app for frameworks_test.go.

Every framework app under testdata implements the same routes, relative
to where it is mounted:

    GET  /hello/<name>   text/plain "Hello, <name>!"
    POST /form           urlencoded name, color (repeated) -> JSON
    POST /json           {"numbers": [...], "label": s} -> JSON sum
    GET  /cookies/set    two Set-Cookie headers
    GET  /cookies/read   the request's cookies as JSON
    GET  /redirect       302 to the URL of /hello/world
    POST /upload         multipart "file" and "note" -> sha256 as JSON
    GET  /stream?n=N     a generator body of N chunks
    GET  /urls           the app's URL for /hello/world, as JSON
    GET  /whoami         REMOTE_USER and X_TENANT from the environ, as JSON
    GET  /gated?token=T  yields "first", waits (at most 5 s) for /release,
                         then yields "second" (or "timeout")
    GET  /release?token=T  lets /gated?token=T go on
"""

import hashlib
import threading
import time

from flask import Flask, Response, jsonify, redirect, request, url_for

app = Flask(__name__)


@app.route("/hello/<name>")
def hello(name):
    return Response("Hello, %s!" % name, mimetype="text/plain")


@app.route("/form", methods=["POST"])
def form():
    return jsonify(name=request.form["name"], colors=request.form.getlist("color"))


@app.route("/json", methods=["POST"])
def json_sum():
    data = request.get_json()
    numbers = data["numbers"]
    return jsonify(sum=sum(numbers), count=len(numbers), label=data["label"])


@app.route("/cookies/set")
def cookies_set():
    resp = Response("cookies set", mimetype="text/plain")
    resp.set_cookie("flavor", "chocolate", path="/")
    resp.set_cookie("size", "large", path="/", httponly=True)
    return resp


@app.route("/cookies/read")
def cookies_read():
    return jsonify(dict(request.cookies))


@app.route("/redirect")
def go():
    return redirect(url_for("hello", name="world"))


@app.route("/upload", methods=["POST"])
def upload():
    f = request.files["file"]
    data = f.read()
    return jsonify(
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        filename=f.filename,
        note=request.form["note"],
    )


@app.route("/stream")
def stream():
    n = int(request.args.get("n", "5"))

    def generate():
        for i in range(n):
            yield "chunk %d: %s\n" % (i, chr(ord("a") + i % 26) * 1000)

    return Response(generate(), mimetype="text/plain")


@app.route("/urls")
def urls():
    return jsonify(
        hello=url_for("hello", name="world"),
        external=url_for("hello", name="world", _external=True),
    )


@app.route("/whoami")
def whoami():
    return jsonify(
        user=request.environ.get("REMOTE_USER"),
        tenant=request.environ.get("X_TENANT"),
        script_name=request.script_root,
    )


_gates = {}
_gates_lock = threading.Lock()


def _gate(token):
    with _gates_lock:
        return _gates.setdefault(token, threading.Event())


@app.route("/gated")
def gated():
    gate = _gate(request.args["token"])

    def generate():
        yield "first\n"
        yield "second\n" if gate.wait(5) else "timeout\n"

    return Response(generate(), mimetype="text/plain")


@app.route("/release")
def release():
    _gate(request.args["token"]).set()
    return Response("released", mimetype="text/plain")


# Work after the response (post_response_test.go): call_on_close runs in
# the body's close(), which must not hold the response back.
closed_on = []


@app.route("/call-on-close")
def call_on_close():
    tag = request.args["tag"]
    resp = Response("closing later", mimetype="text/plain")

    @resp.call_on_close
    def slow():
        time.sleep(0.8)
        closed_on.append(tag)

    return resp


@app.route("/closed-on")
def closed_on_list():
    return jsonify(closed_on)
