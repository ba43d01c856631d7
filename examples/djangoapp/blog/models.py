from django.db import models


class Post(models.Model):
    title = models.CharField(max_length=200)
    content = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.title

    def as_json(self):
        return {"id": self.id, "title": self.title, "content": self.content, "created_at": _iso(self.created_at)}


class Comment(models.Model):
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="comments")
    content = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.content[:50]

    def as_json(self):
        return {"id": self.id, "post_id": self.post_id, "content": self.content, "created_at": _iso(self.created_at)}


def _iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")  # UTC (USE_TZ, TIME_ZONE = "UTC")
