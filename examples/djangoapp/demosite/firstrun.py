"""What the app needs before its first request, run at import."""

import fcntl
import os

from django.conf import settings
from django.core.management import call_command
from django.db import connection


def prepare():
    """Several processes may start at once (the command's worker
    processes, tests): a lock on the data directory serialises the
    migration and the admin's creation."""
    os.makedirs(settings.DATA_DIR, exist_ok=True)
    fd = os.open(settings.DATA_DIR, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        call_command("migrate", interactive=False, verbosity=0)
        with connection.cursor() as cur:
            cur.execute("PRAGMA journal_mode = WAL")  # readers do not block the writer
        collect_static()
        create_admin()
    finally:
        connection.close()
        os.close(fd)  # releases the lock


def collect_static():
    """Copies the admin's CSS, JavaScript and images into STATIC_ROOT for
    the Go server to serve. Several processes may start at once (tests):
    a lock on the directory serialises them; files already there are
    skipped."""
    os.makedirs(settings.STATIC_ROOT, exist_ok=True)
    fd = os.open(settings.STATIC_ROOT, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        call_command("collectstatic", interactive=False, verbosity=0)
    finally:
        os.close(fd)  # releases the lock


def create_admin():
    """Creates the demo superuser from DEMO_ADMIN_USER and
    DEMO_ADMIN_PASSWORD (default admin/admin) unless that user exists."""
    from django.contrib.auth import get_user_model

    username = os.environ.get("DEMO_ADMIN_USER", "admin")
    password = os.environ.get("DEMO_ADMIN_PASSWORD", "admin")
    User = get_user_model()
    if not User.objects.filter(username=username).exists():
        User.objects.create_superuser(username=username, email="", password=password)
