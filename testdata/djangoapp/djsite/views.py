"""The common routes of the frameworks_test.go apps (see flaskapp/app.py)."""

import hashlib
import json
import threading

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST


@require_GET
def hello(request, name):
    return HttpResponse("Hello, %s!" % name, content_type="text/plain")


@csrf_exempt
@require_POST
def form(request):
    return JsonResponse({"name": request.POST["name"], "colors": request.POST.getlist("color")})


@csrf_exempt
@require_POST
def json_sum(request):
    data = json.loads(request.body)
    numbers = data["numbers"]
    return JsonResponse({"sum": sum(numbers), "count": len(numbers), "label": data["label"]})


def cookies_set(request):
    resp = HttpResponse("cookies set", content_type="text/plain")
    resp.set_cookie("flavor", "chocolate", path="/")
    resp.set_cookie("size", "large", path="/", httponly=True)
    return resp


def cookies_read(request):
    return JsonResponse(dict(request.COOKIES))


def go(request):
    return redirect("hello", name="world")


@csrf_exempt
@require_POST
def upload(request):
    f = request.FILES["file"]
    data = f.read()
    return JsonResponse(
        {
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "filename": f.name,
            "note": request.POST["note"],
        }
    )


def stream(request):
    n = int(request.GET.get("n", "5"))

    def generate():
        for i in range(n):
            yield "chunk %d: %s\n" % (i, chr(ord("a") + i % 26) * 1000)

    return StreamingHttpResponse(generate(), content_type="text/plain")


def urls(request):
    return JsonResponse(
        {
            "hello": reverse("hello", kwargs={"name": "world"}),
            "external": request.build_absolute_uri(reverse("hello", kwargs={"name": "world"})),
        }
    )


def whoami(request):
    return JsonResponse(
        {
            "user": request.META.get("REMOTE_USER"),
            "tenant": request.META.get("X_TENANT"),
            "script_name": request.META.get("SCRIPT_NAME"),
        }
    )


@require_POST
def csrf_protected(request):
    # Not exempt: without a CSRF cookie and token Django answers 403.
    return HttpResponse("accepted", content_type="text/plain")


_gates = {}
_gates_lock = threading.Lock()


def _gate(token):
    with _gates_lock:
        return _gates.setdefault(token, threading.Event())


def gated(request):
    gate = _gate(request.GET["token"])

    def generate():
        yield "first\n"
        yield "second\n" if gate.wait(5) else "timeout\n"

    return StreamingHttpResponse(generate(), content_type="text/plain")


def release(request):
    _gate(request.GET["token"]).set()
    return HttpResponse("released", content_type="text/plain")
