"""The JSON API, the same as the Flask app's (see ../../flaskapp/app.py).

The views are exempt from CSRF checks (they take JSON, not forms, and no
cookies authenticate them); the admin keeps Django's protection.
"""

import json

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .models import Comment, Post

TITLE_MAX = Post._meta.get_field("title").max_length
ID_MAX = 2**63 - 1  # SQLite's largest integer: larger ids exist nowhere


class APIError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def error(status, message):
    return JsonResponse({"error": message}, status=status)


def api(**handlers):
    """A CSRF-exempt view that dispatches on the method to handlers and
    answers APIError as {"error": message}."""

    @csrf_exempt
    def view(request, **kwargs):
        handler = handlers.get(request.method.lower())
        if handler is None:
            resp = error(405, "method not allowed")
            resp["Allow"] = ", ".join(sorted(m.upper() for m in handlers))
            return resp
        try:
            return handler(request, **kwargs)
        except APIError as e:
            return error(e.status, e.message)

    return view


def json_body(request):
    try:
        data = json.loads(request.body)
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


def post_field(data):
    """The Post named by data["post_id"]; 400 if there is none."""
    if "post_id" not in data:
        raise APIError(400, "missing field 'post_id'")
    value = data["post_id"]
    if not isinstance(value, int) or isinstance(value, bool):
        raise APIError(400, "'post_id' must be an integer")
    try:
        if abs(value) > ID_MAX:
            raise Post.DoesNotExist
        return Post.objects.get(pk=value)
    except Post.DoesNotExist:
        raise APIError(400, "unknown post_id %d" % value)


def get_or_404(model, pk):
    try:
        if pk > ID_MAX:
            raise model.DoesNotExist
        return model.objects.get(pk=pk)
    except model.DoesNotExist:
        raise APIError(404, "no %s %d" % (model._meta.model_name, pk))


def index(request):
    return JsonResponse(
        {
            "app": "django",
            "endpoints": [
                "GET, POST /posts",
                "GET, PUT, DELETE /posts/<id>",
                "GET, POST /comments (GET takes ?post_id=N)",
                "GET, PUT, DELETE /comments/<id>",
                "GET /interop",
                "GET /host",
                "/admin/ (Django's admin)",
            ],
        }
    )


def list_posts(request):
    return JsonResponse([p.as_json() for p in Post.objects.all()], safe=False)


def create_post(request):
    data = json_body(request)
    post = Post.objects.create(title=text_field(data, "title", TITLE_MAX), content=text_field(data, "content"))
    return JsonResponse(post.as_json(), status=201)


def show_post(request, pk):
    return JsonResponse(get_or_404(Post, pk).as_json())


def update_post(request, pk):
    data = json_body(request)
    title = text_field(data, "title", TITLE_MAX)
    content = text_field(data, "content")
    post = get_or_404(Post, pk)
    post.title, post.content = title, content
    post.save(update_fields=["title", "content"])
    return JsonResponse(post.as_json())


def delete_post(request, pk):
    get_or_404(Post, pk).delete()  # the ForeignKey's CASCADE deletes the comments
    return HttpResponse(status=204)


def list_comments(request):
    qs = Comment.objects.all()
    post_id = request.GET.get("post_id")
    if post_id is not None:
        try:
            post_id = int(post_id)
        except ValueError:
            raise APIError(400, "post_id must be an integer")
        qs = qs.filter(post_id=post_id) if abs(post_id) <= ID_MAX else qs.none()
    return JsonResponse([c.as_json() for c in qs], safe=False)


def create_comment(request):
    data = json_body(request)
    post = post_field(data)
    comment = Comment.objects.create(post=post, content=text_field(data, "content"))
    return JsonResponse(comment.as_json(), status=201)


def show_comment(request, pk):
    return JsonResponse(get_or_404(Comment, pk).as_json())


def update_comment(request, pk):
    """Replaces the content; "post_id", if given, moves the comment."""
    data = json_body(request)
    content = text_field(data, "content")
    comment = get_or_404(Comment, pk)
    if "post_id" in data:
        comment.post = post_field(data)
    comment.content = content
    comment.save(update_fields=["post", "content"])
    return JsonResponse(comment.as_json())


def delete_comment(request, pk):
    get_or_404(Comment, pk).delete()
    return HttpResponse(status=204)


def gohost():
    try:
        import gohost
    except ImportError:
        raise APIError(503, "not running inside the Go host (no gohost module)")
    return gohost


def call_interop(request):
    """A call from Python into Go: the host's ping() answers "pong"."""
    return JsonResponse({"ping": gohost().ping(), "via": "gohost"})


def call_host(request):
    """The Go host's own view: go_version, uptime_seconds and the apps."""
    return JsonResponse(gohost().host())


posts = api(get=list_posts, post=create_post)
post_detail = api(get=show_post, put=update_post, delete=delete_post)
comments = api(get=list_comments, post=create_comment)
comment_detail = api(get=show_comment, put=update_comment, delete=delete_comment)
interop = api(get=call_interop)
host = api(get=call_host)


def not_found(request, exception=None):
    return error(404, "not found")


def server_error(request):
    return error(500, "internal server error")
