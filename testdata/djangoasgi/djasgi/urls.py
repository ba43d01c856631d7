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
    path("gated", views.gated),
    path("state", views.state),
    path("sleep", views.sleep),
    path("urls", views.urls),
]
