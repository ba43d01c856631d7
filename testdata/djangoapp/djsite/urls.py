from django.urls import path

from . import views

urlpatterns = [
    path("hello/<str:name>", views.hello, name="hello"),
    path("form", views.form),
    path("json", views.json_sum),
    path("cookies/set", views.cookies_set),
    path("cookies/read", views.cookies_read),
    path("redirect", views.go),
    path("upload", views.upload),
    path("stream", views.stream),
    path("urls", views.urls),
    path("whoami", views.whoami),
    path("csrf", views.csrf_protected),
    path("gated", views.gated),
    path("release", views.release),
]
