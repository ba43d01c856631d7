"""The FastAPI third of the demo: the same JSON API of posts and comments on
SQLite as the Flask and Django apps, served natively over ASGI, plus a
WebSocket echo.

Served by `make run` at /fastapi/ (see ../apps.toml, protocol = "asgi").
Data lives in $DEMO_DATA_DIR/fastapi.sqlite3 (default: data/ next to this
file), created at lifespan startup. The endpoints that touch the database
are plain `def` functions: FastAPI runs them in its threadpool, off the
event loop, each with its own connection (the `db` dependency). Bodies are
parsed by hand, as the other two apps do, so that the three answer alike:
any JSON body whatever its Content-Type, and 400 with {"error": message}
where FastAPI would answer 422 with its own shape.
"""

import datetime
import json
import os
import sqlite3

from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

APP_DIR = os.path.dirname(os.path.abspath(__file__))
DATA_DIR = os.environ.get("DEMO_DATA_DIR") or os.path.join(APP_DIR, "data")
DB_PATH = os.path.join(DATA_DIR, "fastapi.sqlite3")
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

app = FastAPI(title="Posts and comments (FastAPI)")


class APIError(Exception):
    """Answered as {"error": message} with status."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def error(status, message, headers=None):
    return JSONResponse({"error": message}, status_code=status, headers=headers)


@app.exception_handler(APIError)
async def api_error(request, exc):
    return error(exc.status, exc.message)


@app.exception_handler(StarletteHTTPException)
async def http_error(request, exc):
    """404 for an unknown path, 405 for another method: {"error": "not found"},
    as Flask and Django say it."""
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code in (204, 304) or exc.status_code < 200:
        return Response(status_code=exc.status_code, headers=getattr(exc, "headers", None))
    return error(exc.status_code, detail.lower(), getattr(exc, "headers", None))


@app.exception_handler(RequestValidationError)
async def validation_error(request, exc):
    """FastAPI answers a bad parameter with 422 and its own shape; this API
    answers 400 with {"error": "post_id: value is not a valid integer"}."""
    messages = []
    for e in exc.errors():
        loc = [str(part) for part in e.get("loc", ()) if part not in ("query", "path", "body", "header")]
        messages.append("%s: %s" % (".".join(loc), e.get("msg")) if loc else str(e.get("msg")))
    return error(400, "; ".join(messages) or "invalid request")


@app.exception_handler(Exception)
async def server_error(request, exc):
    return error(500, "internal server error")


def connect():
    # The connection is made in the threadpool thread that runs the
    # dependency and used in the one that runs the endpoint: never by two
    # at once, so the check is off.
    conn = sqlite3.connect(DB_PATH, timeout=30, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


@app.on_event("startup")
def init_db():
    """Runs at the ASGI lifespan startup, before the first request."""
    os.makedirs(DATA_DIR, exist_ok=True)
    conn = connect()
    try:
        conn.execute("PRAGMA journal_mode = WAL")  # readers do not block the writer
        conn.executescript(SCHEMA)
        conn.commit()
    finally:
        conn.close()


def db():
    """The request's own connection, closed after the response."""
    conn = connect()
    try:
        yield conn
    finally:
        conn.close()


async def json_body(request: Request):
    """The body as a JSON object, whatever the Content-Type says."""
    body = await request.body()
    try:
        data = json.loads(body)
    except ValueError as e:
        raise APIError(400, "malformed JSON: %s" % e)
    if not isinstance(data, dict):
        raise APIError(400, "the body must be a JSON object")
    return data


def path_id(value):
    """A path's id: digits only, or the URL names nothing (404), as with the
    int converters of Flask and Django."""
    if not (value.isascii() and value.isdigit()):
        raise APIError(404, "not found")
    return int(value)


async def post_id_path(post_id: str):
    return path_id(post_id)


async def comment_id_path(comment_id: str):
    return path_id(comment_id)


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def get_post(conn, post_id):
    row = None
    if post_id <= ID_MAX:
        row = conn.execute("SELECT * FROM posts WHERE id = ?", (post_id,)).fetchone()
    if row is None:
        raise APIError(404, "no post %d" % post_id)
    return row


def get_comment(conn, comment_id):
    row = None
    if comment_id <= ID_MAX:
        row = conn.execute("SELECT * FROM comments WHERE id = ?", (comment_id,)).fetchone()
    if row is None:
        raise APIError(404, "no comment %d" % comment_id)
    return row


@app.get("/")
async def index():
    return {
        "app": "fastapi",
        "endpoints": [
            "GET, POST /posts",
            "GET, PUT, DELETE /posts/<id>",
            "GET, POST /comments (GET takes ?post_id=N)",
            "GET, PUT, DELETE /comments/<id>",
            "GET /interop",
            "GET /host",
            "WebSocket /ws (echo)",
            "/docs (FastAPI's OpenAPI UI)",
        ],
    }


# The path ids are dependencies declared before the body: a malformed id is
# 404 before the body is looked at, as when Flask's router finds no route.


@app.get("/posts")
def list_posts(conn=Depends(db)):
    rows = conn.execute("SELECT * FROM posts ORDER BY id").fetchall()
    return [post_json(r) for r in rows]


@app.post("/posts", status_code=201)
def create_post(data=Depends(json_body), conn=Depends(db)):
    title = text_field(data, "title", TITLE_MAX)
    content = text_field(data, "content")
    with conn:  # commits
        cur = conn.execute("INSERT INTO posts (title, content, created_at) VALUES (?, ?, ?)", (title, content, now()))
    return post_json(get_post(conn, cur.lastrowid))


@app.get("/posts/{post_id}")
def show_post(post_id=Depends(post_id_path), conn=Depends(db)):
    return post_json(get_post(conn, post_id))


@app.put("/posts/{post_id}")
def update_post(post_id=Depends(post_id_path), data=Depends(json_body), conn=Depends(db)):
    title = text_field(data, "title", TITLE_MAX)
    content = text_field(data, "content")
    get_post(conn, post_id)
    with conn:
        cur = conn.execute("UPDATE posts SET title = ?, content = ? WHERE id = ?", (title, content, post_id))
    if cur.rowcount == 0:  # deleted meanwhile
        raise APIError(404, "no post %d" % post_id)
    return post_json(get_post(conn, post_id))


@app.delete("/posts/{post_id}", status_code=204)
def delete_post(post_id=Depends(post_id_path), conn=Depends(db)):
    get_post(conn, post_id)
    with conn:  # ON DELETE CASCADE removes the comments
        cur = conn.execute("DELETE FROM posts WHERE id = ?", (post_id,))
    if cur.rowcount == 0:
        raise APIError(404, "no post %d" % post_id)
    return Response(status_code=204)


@app.get("/comments")
def list_comments(post_id: int = None, conn=Depends(db)):
    """?post_id=N keeps post N's comments; not an integer is 400 (through
    validation_error)."""
    if post_id is None:
        rows = conn.execute("SELECT * FROM comments ORDER BY id").fetchall()
    elif abs(post_id) > ID_MAX:
        rows = []
    else:
        rows = conn.execute("SELECT * FROM comments WHERE post_id = ? ORDER BY id", (post_id,)).fetchall()
    return [comment_json(r) for r in rows]


@app.post("/comments", status_code=201)
def create_comment(data=Depends(json_body), conn=Depends(db)):
    post_id = post_id_field(data)
    content = text_field(data, "content")
    try:
        with conn:
            cur = conn.execute(
                "INSERT INTO comments (post_id, content, created_at) VALUES (?, ?, ?)", (post_id, content, now())
            )
    except sqlite3.IntegrityError:  # the foreign key: no such post
        raise APIError(400, "unknown post_id %d" % post_id)
    return comment_json(get_comment(conn, cur.lastrowid))


@app.get("/comments/{comment_id}")
def show_comment(comment_id=Depends(comment_id_path), conn=Depends(db)):
    return comment_json(get_comment(conn, comment_id))


@app.put("/comments/{comment_id}")
def update_comment(comment_id=Depends(comment_id_path), data=Depends(json_body), conn=Depends(db)):
    """Replaces the content; "post_id", if given, moves the comment."""
    content = text_field(data, "content")
    current = get_comment(conn, comment_id)
    post_id = post_id_field(data) if "post_id" in data else current["post_id"]
    try:
        with conn:
            conn.execute("UPDATE comments SET post_id = ?, content = ? WHERE id = ?", (post_id, content, comment_id))
    except sqlite3.IntegrityError:
        raise APIError(400, "unknown post_id %d" % post_id)
    return comment_json(get_comment(conn, comment_id))


@app.delete("/comments/{comment_id}", status_code=204)
def delete_comment(comment_id=Depends(comment_id_path), conn=Depends(db)):
    get_comment(conn, comment_id)
    with conn:
        cur = conn.execute("DELETE FROM comments WHERE id = ?", (comment_id,))
    if cur.rowcount == 0:
        raise APIError(404, "no comment %d" % comment_id)
    return Response(status_code=204)


def gohost():
    try:
        import gohost
    except ImportError:
        raise APIError(503, "not running inside the Go host (no gohost module)")
    return gohost


# The Go functions answer at once: called straight from the event loop.


@app.get("/interop")
async def interop():
    """A call from Python into Go: the host's ping() answers "pong"."""
    return {"ping": gohost().ping(), "via": "gohost"}


@app.get("/host")
async def host():
    """The Go host's own view: go_version, uptime_seconds and the apps."""
    return gohost().host()


@app.websocket("/ws")
async def echo(ws: WebSocket):
    """Sends every message back as it came: text as text, bytes as bytes,
    until the client closes."""
    await ws.accept()
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await ws.send_text(message["text"])
        else:
            await ws.send_bytes(message.get("bytes") or b"")
