from django.urls import path

from . import views

urlpatterns = [
    path("", views.index),
    path("posts", views.posts),
    path("posts/<int:pk>", views.post_detail),
    path("comments", views.comments),
    path("comments/<int:pk>", views.comment_detail),
    path("interop", views.interop),
    path("host", views.host),
]
