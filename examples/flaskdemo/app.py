"""The demo served by `make run`: a small Flask app hosted by the Go wsgi
command, showing pages, JSON, a form and a streamed response."""

import platform
import sys
import threading
import time

from flask import Flask, Response, jsonify, render_template, request, url_for

app = Flask(__name__)
notes = []
notes_lock = threading.Lock()


@app.get("/")
def index():
    with notes_lock:
        current = list(notes)
    return render_template(
        "index.html",
        notes=current,
        python=platform.python_version(),
        executable=sys.executable,
        script_name=request.environ.get("SCRIPT_NAME", ""),
    )


@app.post("/notes")
def add_note():
    text = request.form.get("text", "").strip()
    if text:
        with notes_lock:
            notes.append(text[:200])
    return app.redirect(url_for("index"), 303)


@app.get("/api/info")
def info():
    env = request.environ
    return jsonify(
        python=platform.python_version(),
        server=env.get("SERVER_SOFTWARE", "go wsgi"),
        multithread=env["wsgi.multithread"],
        remote_addr=env.get("REMOTE_ADDR"),
        path=env.get("PATH_INFO"),
    )


@app.get("/stream")
def stream():
    def generate():
        for i in range(1, 6):
            yield "tick %d\n" % i
            time.sleep(0.2)

    return Response(generate(), mimetype="text/plain")
