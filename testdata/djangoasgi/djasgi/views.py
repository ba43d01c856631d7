"""Async views for the routes listed in testdata/starletteapp/app.py.

Django 3.2 has no lifespan and no WebSocket support (without Channels), and
iterates a StreamingHttpResponse synchronously on the event loop, so a
/gated view cannot await an asyncio.Event that another request to this app
sets: the loop is busy in the generator. /gated is djsite's own (sync) view
instead, which waits on a threading.Event; the test opens the gate with
djsite's /release served over WSGI by the same project in the same process.
"""

import asyncio
import hashlib
import json

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from djsite.views import gated  # noqa: F401 (served by urls.py)


def csrf_exempt(view):
    # django.views.decorators.csrf.csrf_exempt wraps the view in a sync
    # function in Django 3.2, which would hide that the view is async.
    view.csrf_exempt = True
    return view


async def hello(request, name):
    return HttpResponse("Hello, %s!" % name, content_type="text/plain")


@csrf_exempt
async def form(request):
    return JsonResponse({"name": request.POST["name"], "colors": request.POST.getlist("color")})


@csrf_exempt
async def json_sum(request):
    data = json.loads(request.body)
    numbers = data["numbers"]
    return JsonResponse({"sum": sum(numbers), "count": len(numbers), "label": data["label"]})


async def cookies_set(request):
    resp = HttpResponse("cookies set", content_type="text/plain")
    resp.set_cookie("flavor", "chocolate", path="/")
    resp.set_cookie("size", "large", path="/", httponly=True)
    return resp


async def cookies_read(request):
    return JsonResponse(dict(request.COOKIES))


async def go(request):
    return redirect("hello", name="world")


@csrf_exempt
async def upload(request):
    h = hashlib.sha256()
    size = chunks = 0
    while True:
        chunk = request.read(64 << 10)
        if not chunk:
            break
        h.update(chunk)
        size += len(chunk)
        chunks += 1
    return JsonResponse({"sha256": h.hexdigest(), "size": size, "chunks": chunks})


async def stream(request):
    n = int(request.GET.get("n", "5"))

    def generate():
        for i in range(n):
            yield "chunk %d: %s\n" % (i, chr(ord("a") + i % 26) * 1000)

    return StreamingHttpResponse(generate(), content_type="text/plain")


async def state(request):
    return JsonResponse({"started": None, "startups": 0})


async def sleep(request):
    await asyncio.sleep(0.2)
    return HttpResponse("slept", content_type="text/plain")


async def urls(request):
    hello = reverse("hello", kwargs={"name": "world"})
    return JsonResponse({"hello": hello, "external": request.build_absolute_uri(hello)})
