"""An ASGI app whose response head comes from the query string, for
security_test.go: ?status=N sets the status, ?name=...&value=... one header
(Python escapes allowed, as in testdata/failing.py). It reports what send()
raised, or "accepted"."""

import urllib.parse


def unescape(s):
    return urllib.parse.unquote(s, encoding="latin-1").encode("latin-1").decode("unicode_escape")


async def app(scope, receive, send):
    if scope["type"] != "http":
        raise ValueError("http only")
    q = dict(urllib.parse.parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
    status = q.get("status", "200")
    status = int(status) if status.lstrip("-").isdigit() else status
    headers = []
    if "name" in q:
        headers.append((unescape(q["name"]).encode("latin-1"), unescape(q.get("value", "")).encode("latin-1")))
    if q.get("str") == "1":
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
    try:
        await send({"type": "http.response.start", "status": status, "headers": headers})
    except Exception as e:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": ("%s: %s" % (type(e).__name__, e)).encode()})
        return
    await send({"type": "http.response.body", "body": b"accepted"})
