"""The Flask half of the demo: a JSON API of posts and comments on SQLite.

Served by `make run` at /flask/ (see ../apps.toml). Data lives in
$DEMO_DATA_DIR/flask.sqlite3 (default: data/ next to this file), created on
first run. Each request opens its own connection: requests run on several
threads at once.
"""

import datetime
import json
import os
import sqlite3

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

APP_DIR = os.path.dirname(os.path.abspath(__file__))
DATA_DIR = os.environ.get("DEMO_DATA_DIR") or os.path.join(APP_DIR, "data")
DB_PATH = os.path.join(DATA_DIR, "flask.sqlite3")
TITLE_MAX = 200
ID_MAX = 2**63 - 1  # SQLite's largest integer: larger ids exist nowhere

SCHEMA = """
CREATE TABLE IF NOT EXISTS posts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS comments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    post_id INTEGER NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
    content TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS comments_post_id ON comments(post_id);
"""

app = Flask(__name__)


class APIError(Exception):
    """Answered as {"error": message} with status."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def connect():
    conn = sqlite3.connect(DB_PATH, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def init_db():
    os.makedirs(DATA_DIR, exist_ok=True)
    conn = connect()
    try:
        conn.execute("PRAGMA journal_mode = WAL")  # readers do not block the writer
        conn.executescript(SCHEMA)
        conn.commit()
    finally:
        conn.close()


init_db()


def db():
    """The request's connection, opened on first use."""
    if "db" not in g:
        g.db = connect()
    return g.db


@app.teardown_appcontext
def close_db(exc):
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


@app.errorhandler(APIError)
def api_error(e):
    return jsonify(error=e.message), e.status


@app.errorhandler(HTTPException)
def http_error(e):
    return jsonify(error=e.name.lower()), e.code


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def json_body():
    try:
        data = json.loads(request.get_data())
    except ValueError as e:
        raise APIError(400, "malformed JSON: %s" % e)
    if not isinstance(data, dict):
        raise APIError(400, "the body must be a JSON object")
    return data


def text_field(data, name, max_len=None):
    if name not in data:
        raise APIError(400, "missing field %r" % name)
    value = data[name]
    if not isinstance(value, str) or not value.strip():
        raise APIError(400, "%r must be a non-empty string" % name)
    if max_len is not None and len(value) > max_len:
        raise APIError(400, "%r is longer than %d characters" % (name, max_len))
    return value


def post_id_field(data):
    if "post_id" not in data:
        raise APIError(400, "missing field 'post_id'")
    value = data["post_id"]
    if not isinstance(value, int) or isinstance(value, bool):
        raise APIError(400, "'post_id' must be an integer")
    if abs(value) > ID_MAX:
        raise APIError(400, "unknown post_id %d" % value)
    return value


def post_json(row):
    return {"id": row["id"], "title": row["title"], "content": row["content"], "created_at": row["created_at"]}


def comment_json(row):
    return {"id": row["id"], "post_id": row["post_id"], "content": row["content"], "created_at": row["created_at"]}


def get_post(post_id):
    row = None
    if post_id <= ID_MAX:
        row = db().execute("SELECT * FROM posts WHERE id = ?", (post_id,)).fetchone()
    if row is None:
        raise APIError(404, "no post %d" % post_id)
    return row


def get_comment(comment_id):
    row = None
    if comment_id <= ID_MAX:
        row = db().execute("SELECT * FROM comments WHERE id = ?", (comment_id,)).fetchone()
    if row is None:
        raise APIError(404, "no comment %d" % comment_id)
    return row


@app.get("/")
def index():
    return jsonify(
        app="flask",
        endpoints=[
            "GET, POST /posts",
            "GET, PUT, DELETE /posts/<id>",
            "GET, POST /comments (GET takes ?post_id=N)",
            "GET, PUT, DELETE /comments/<id>",
            "GET /interop",
            "GET /host",
        ],
    )


@app.get("/posts")
def list_posts():
    rows = db().execute("SELECT * FROM posts ORDER BY id").fetchall()
    return jsonify([post_json(r) for r in rows])


@app.post("/posts")
def create_post():
    data = json_body()
    title = text_field(data, "title", TITLE_MAX)
    content = text_field(data, "content")
    conn = db()
    with conn:  # commits
        cur = conn.execute(
            "INSERT INTO posts (title, content, created_at) VALUES (?, ?, ?)", (title, content, now())
        )
    return jsonify(post_json(get_post(cur.lastrowid))), 201


@app.get("/posts/<int:post_id>")
def show_post(post_id):
    return jsonify(post_json(get_post(post_id)))


@app.put("/posts/<int:post_id>")
def update_post(post_id):
    data = json_body()
    title = text_field(data, "title", TITLE_MAX)
    content = text_field(data, "content")
    get_post(post_id)
    conn = db()
    with conn:
        cur = conn.execute("UPDATE posts SET title = ?, content = ? WHERE id = ?", (title, content, post_id))
    if cur.rowcount == 0:  # deleted meanwhile
        raise APIError(404, "no post %d" % post_id)
    return jsonify(post_json(get_post(post_id)))


@app.delete("/posts/<int:post_id>")
def delete_post(post_id):
    get_post(post_id)
    conn = db()
    with conn:  # ON DELETE CASCADE removes the comments
        cur = conn.execute("DELETE FROM posts WHERE id = ?", (post_id,))
    if cur.rowcount == 0:
        raise APIError(404, "no post %d" % post_id)
    return "", 204


@app.get("/comments")
def list_comments():
    post_id = request.args.get("post_id")
    if post_id is None:
        rows = db().execute("SELECT * FROM comments ORDER BY id").fetchall()
    else:
        try:
            post_id = int(post_id)
        except ValueError:
            raise APIError(400, "post_id must be an integer")
        if abs(post_id) > ID_MAX:
            return jsonify([])
        rows = db().execute("SELECT * FROM comments WHERE post_id = ? ORDER BY id", (post_id,)).fetchall()
    return jsonify([comment_json(r) for r in rows])


@app.post("/comments")
def create_comment():
    data = json_body()
    post_id = post_id_field(data)
    content = text_field(data, "content")
    conn = db()
    try:
        with conn:
            cur = conn.execute(
                "INSERT INTO comments (post_id, content, created_at) VALUES (?, ?, ?)", (post_id, content, now())
            )
    except sqlite3.IntegrityError:  # the foreign key: no such post
        raise APIError(400, "unknown post_id %d" % post_id)
    return jsonify(comment_json(get_comment(cur.lastrowid))), 201


@app.get("/comments/<int:comment_id>")
def show_comment(comment_id):
    return jsonify(comment_json(get_comment(comment_id)))


@app.put("/comments/<int:comment_id>")
def update_comment(comment_id):
    """Replaces the content; "post_id", if given, moves the comment."""
    data = json_body()
    content = text_field(data, "content")
    current = get_comment(comment_id)
    post_id = post_id_field(data) if "post_id" in data else current["post_id"]
    conn = db()
    try:
        with conn:
            conn.execute("UPDATE comments SET post_id = ?, content = ? WHERE id = ?", (post_id, content, comment_id))
    except sqlite3.IntegrityError:
        raise APIError(400, "unknown post_id %d" % post_id)
    return jsonify(comment_json(get_comment(comment_id)))


@app.delete("/comments/<int:comment_id>")
def delete_comment(comment_id):
    get_comment(comment_id)
    conn = db()
    with conn:
        cur = conn.execute("DELETE FROM comments WHERE id = ?", (comment_id,))
    if cur.rowcount == 0:
        raise APIError(404, "no comment %d" % comment_id)
    return "", 204


def gohost():
    try:
        import gohost
    except ImportError:
        raise APIError(503, "not running inside the Go host (no gohost module)")
    return gohost


@app.get("/interop")
def interop():
    """A call from Python into Go: the host's ping() answers "pong"."""
    return jsonify(ping=gohost().ping(), via="gohost")


@app.get("/host")
def host():
    """The Go host's own view: go_version, uptime_seconds and the apps."""
    return jsonify(gohost().host())
