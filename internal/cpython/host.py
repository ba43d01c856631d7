"""The Python half of the host: loading apps and formatting errors.

Run once at start-up as the module ``_wsgi_host``. Kept in Python because
import machinery is clearer here than in C; nothing here runs per request.
"""

import importlib
import importlib.util
import contextvars
import itertools
import logging
import os
import site
import sys
import traceback
import types

_counter = itertools.count(1)

# The app whose work the current context is: set in an ASGI app's tasks and
# in threads an app starts, so that worker threads that copy the context
# (anyio, asgiref, asyncio.to_thread) call the right app's Go functions and
# log as that app. Threads running a request know it without this.
current_app = contextvars.ContextVar("wsgi_current_app", default=0)
current_request = contextvars.ContextVar("wsgi_current_request", default=0)


class RequestTimeout(TimeoutError):
    """Raised in a request's Python thread when the request ran past the
    host's RequestTimeout (the client already got 504)."""


class FileWrapper:
    """wsgi.file_wrapper (PEP 3333).

    Returned by an app, a wrapper over a regular file is sent by the Go host
    with sendfile; any other file-like object is read in blocks.
    """

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration


class GoHandler(logging.Handler):
    """Sends Python logging records to the Go host, which logs them with
    the slog logger of the app that emitted them.

    It stands in for the handler an app would otherwise be missing: a
    record that another handler on its way emits (the app's own logging
    set-up) is not sent, so that each record is logged once, as under
    other servers.
    """

    def emit(self, record):
        try:
            if _emitted_elsewhere(record):
                return
            _log(record.levelno, record.name, self.format(record))
        except Exception:
            self.handleError(record)


# Handlers that do not count as logging a record: NullHandler emits
# nothing by design (libraries add it), and a mail to the admins (Django's
# default when DEBUG is off) is a notification, not the log.
_SILENT_HANDLERS = {"NullHandler", "SMTPHandler", "AdminEmailHandler"}


def _emitted_elsewhere(record):
    """Whether a handler other than ours emits record: one on its logger
    or an ancestor, up to the first that does not propagate (as
    Logger.callHandlers walks them), whose level and filters admit it."""
    root = logging.getLogger()
    logger = root if record.name == root.name else logging.Logger.manager.loggerDict.get(record.name)
    if not isinstance(logger, logging.Logger):
        logger = root  # a record made by hand, not by a logger
    while logger is not None:
        for h in logger.handlers:
            if isinstance(h, GoHandler) or any(c.__name__ in _SILENT_HANDLERS for c in type(h).__mro__):
                continue
            if record.levelno >= h.level and h.filter(record):
                return True
        if not logger.propagate:
            break
        logger = logger.parent
    return False


def _install_logging():
    root = logging.getLogger()
    handler = GoHandler()
    root.addHandler(handler)
    # A record no handler takes (a dictConfig of the root logger removed
    # ours) goes to Go too, not to stderr: same level as Python's.
    logging.lastResort = GoHandler(logging.WARNING)
    original = logging.basicConfig

    def basicConfig(**kwargs):
        # With our handler on the root logger, the standard basicConfig
        # would do nothing at all. Run it without ours, then keep ours in
        # place of the stderr handler it makes by default (taking its
        # format), so that an app's basicConfig(level=..., format=...)
        # works and its records still reach Go. Handlers it makes from
        # filename, stream or handlers stay: ours, back after them, then
        # sends only what they do not emit.
        root.removeHandler(handler)
        try:
            original(**kwargs)
        finally:
            if not any(k in kwargs for k in ("filename", "stream", "handlers")):
                for h in list(root.handlers):
                    if type(h) is logging.StreamHandler and h.stream is sys.stderr:
                        handler.setFormatter(h.formatter)
                        root.removeHandler(h)
            if handler not in root.handlers:
                root.addHandler(handler)

    basicConfig.__doc__ = original.__doc__
    logging.basicConfig = basicConfig


def _install_gohost():
    mod = types.ModuleType(
        "gohost",
        "Go functions of the host process.\n\n"
        "gohost.NAME(*args) or gohost.call('NAME', *args) calls the Go function\n"
        "the host registered as NAME for this app (wsgi.Options.Functions).",
    )

    def call(name, *args):
        return _call(name, args)

    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)

        def function(*args):
            return _call(name, args)

        function.__name__ = function.__qualname__ = name
        return function

    mod.call = call
    mod.__getattr__ = __getattr__
    sys.modules["gohost"] = mod


def _install_thread_app():
    """Threads an app starts work for that app: they inherit its id, so
    their gohost calls and log records are the app's."""
    import threading

    original = threading.Thread.start

    def start(self):
        app, request = _current_app()
        if app:
            run = self.run

            def run_for_app():
                current_app.set(app)
                current_request.set(request)
                return run()

            self.run = run_for_app
        return original(self)

    start.__doc__ = original.__doc__
    threading.Thread.start = start


_install_logging()
_install_gohost()
_install_thread_app()


# --- Live view -----------------------------------------------------------
#
# The Go side's Handler.Snapshot asks for the Python stacks of the requests
# in progress in one call, with the GIL taken once: a WSGI request by the
# identifier of the thread serving it, an ASGI request by its handle (the
# task its connection runs in, which _asgi_tasks keeps).

import weakref

_asgi_tasks = weakref.WeakValueDictionary()  # ASGI request handle -> its task

# The deepest stack reported, innermost frames kept.
_STACK_LIMIT = 64


def _frame_list(frames):
    """[[file, line, function, source line], ...], outermost first, from
    (frame, lineno) pairs innermost first. Source lines come from
    linecache: a file is read once, then kept in memory."""
    import linecache

    out = []
    for f, lineno in frames:
        if len(out) >= _STACK_LIMIT:
            break
        code = f.f_code
        line = linecache.getline(code.co_filename, lineno or 0).strip()
        out.append([code.co_filename, lineno or 0, code.co_name, line])
    out.reverse()
    return out


def _thread_frames(frame):
    while frame is not None:
        yield frame, frame.f_lineno
        frame = frame.f_back


def _task_frames(task):
    """The frames of a task's coroutine chain, innermost first: where each
    awaiting coroutine stands (Task.get_stack gives only the outermost
    frame of a suspended task)."""
    chain = []
    coro = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
        if frame is None:
            break
        chain.append((frame, frame.f_lineno))
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or getattr(coro, "ag_await", None)
    chain.reverse()
    return chain


def stacks(request):
    """request: JSON {"threads": [ident, ...], "tasks": [handle, ...]}.
    Returns JSON {"threads": {ident: frames}, "tasks": {handle: frames}}
    (see _frame_list), leaving out those not found."""
    import json

    want = json.loads(request)
    current = sys._current_frames()
    threads = {}
    for ident in want.get("threads") or ():
        frame = current.get(ident)
        if frame is not None:
            threads[str(ident)] = _frame_list(_thread_frames(frame))
    tasks = {}
    for handle in want.get("tasks") or ():
        task = _asgi_tasks.get(handle)
        if task is not None and not task.done():
            tasks[str(handle)] = _frame_list(_task_frames(task))
    return json.dumps({"threads": threads, "tasks": tasks})


def format_exception(exc):
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _module_file(directory, module):
    """The file that defines module under directory, or None."""
    base = os.path.join(directory, *module.split("."))
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


def _load_module(directory, module):
    """Imports module from directory under a name of its own.

    The file runs as a fresh module named after its position ("app" becomes
    "__wsgi1_app", "pkg.app" becomes "pkg.__wsgi1_app"), so two apps whose
    module is called "app" in different directories do not share
    sys.modules["app"], while relative imports in a package still work.
    """
    path = _module_file(directory, module)
    if path is None:
        # Not a file under the app directory: an installed module.
        return importlib.import_module(module)
    parent, _, leaf = module.rpartition(".")
    if parent:
        importlib.import_module(parent)
    unique = "__wsgi%d_%s" % (next(_counter), leaf)
    if parent:
        unique = parent + "." + unique
    is_package = os.path.basename(path) == "__init__.py"
    spec = importlib.util.spec_from_file_location(
        unique,
        path,
        submodule_search_locations=[os.path.dirname(path)] if is_package else None,
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[unique] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(unique, None)
        raise
    return mod


def purge_modules(directory):
    """Forgets every module loaded from a file under directory (a reload
    imports them again). Extension modules cannot really be reloaded:
    CPython keeps their first import."""
    prefix = os.path.join(os.path.abspath(directory), "")
    for name, mod in list(sys.modules.items()):
        path = getattr(mod, "__file__", None)
        if isinstance(path, str) and os.path.abspath(path).startswith(prefix):
            del sys.modules[name]
            _drop_stale_bytecode(path)
    importlib.invalidate_caches()


def _drop_stale_bytecode(path):
    """Removes the .pyc of source file path if the source is newer.

    Python checks a .pyc against its source's size and modification time
    in whole seconds, so an edit that keeps the size within the second of
    the last compile would import the old code again."""
    if not path.endswith(".py"):
        return
    try:
        pyc = importlib.util.cache_from_source(path)
        if os.stat(path).st_mtime_ns > os.stat(pyc).st_mtime_ns:
            os.remove(pyc)
    except (OSError, ValueError, NotImplementedError):
        pass  # no .pyc, or not ours to remove: Python's own check stands


def load_app(name, directory, module, callable_name, site_packages, *python_path):
    """Returns (app, base environ) for the Go host."""
    # Dir first, then PythonPath in order, then the virtualenv's
    # site-packages (with its .pth entries), all ahead of the system's
    # packages so that the app's own versions win.
    before = list(sys.path)
    if site_packages:
        site.addsitedir(site_packages)
    added = [p for p in sys.path if p not in before]
    front = [directory] + list(python_path) + added
    sys.path[:] = front + [p for p in sys.path if p not in front]

    mod = _load_module(directory, module)
    app = mod
    for attr in callable_name.split("."):
        try:
            app = getattr(app, attr)
        except AttributeError:
            raise AttributeError(
                "module %r (%s) has no callable %r"
                % (module, getattr(mod, "__file__", "?"), callable_name)
            ) from None
    if not callable(app):
        raise TypeError("%s:%s is %s, not a callable" % (module, callable_name, type(app).__name__))

    environ = {
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
        "wsgi.url_scheme": "http",
        "SCRIPT_NAME": "",
        "SERVER_SOFTWARE": "gowsgi",
    }
    return app, environ


# --- ASGI ---------------------------------------------------------------
#
# One event loop per ASGI app, run by a Go-owned OS thread (run_loop). The
# Go side starts a request with start(), which schedules the app on the
# loop; receive() asks Go for messages (_asgi_want) and Go delivers them
# with deliver(); send() hands each message to Go (_asgi_send), which
# validates it and queues it for the client, returning 1 when its queue is
# full so that send() waits for drained().

import collections

# asyncio (and uvloop, which loads ssl and libcrypto) is imported with the
# first ASGI app: a process serving only WSGI apps is ~5 MiB smaller.
asyncio = None


def _new_event_loop():
    global asyncio
    import asyncio

    try:
        import uvloop
    except ImportError:  # optional: Debian's python3-uvloop
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def is_asgi(app):
    """Whether app looks like an ASGI callable (an async callable)."""
    import inspect

    if inspect.iscoroutinefunction(app):
        return True
    call = getattr(type(app), "__call__", None)
    return call is not None and inspect.iscoroutinefunction(call)


class Request:
    """One ASGI connection scope: its receive and send callables."""

    __slots__ = ("handle", "loop", "inbox", "waiters", "drain", "task")

    def __init__(self, handle, loop, first):
        self.handle = handle
        self.loop = loop
        self.inbox = collections.deque()
        self.waiters = collections.deque()
        self.drain = None
        self.task = None
        if first is not None:
            self.inbox.append(first)

    async def receive(self):
        if self.inbox:
            return self.inbox.popleft()
        fut = self.loop.create_future()
        self.waiters.append(fut)
        _asgi_want(self.handle)
        return await fut

    def deliver(self, message):
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(message)
                return
        self.inbox.append(message)

    async def send(self, message):
        if _asgi_send(self.handle, message):
            fut = self.drain = self.loop.create_future()
            await fut

    def drained(self):
        fut, self.drain = self.drain, None
        if fut is not None and not fut.done():
            fut.set_result(None)


class ASGIApp:
    """An ASGI app with its event loop and lifespan state."""

    def __init__(self, app, app_id):
        self.app = app
        self.app_id = app_id
        self.loop = _new_event_loop()
        self.state = {}
        self.lifespan_in = None
        self.lifespan_out = None
        self.lifespan_task = None
        self.lifespan_supported = True
        self.requests = {}  # handle -> Request, while its task runs
        self.mailbox = None
        self.efd = -1

    def attach(self, mailbox, efd):
        """Where Go posts requests and messages (see asgi.c)."""
        self.mailbox, self.efd = mailbox, efd

    def run_loop(self):
        asyncio.set_event_loop(self.loop)
        self.loop.add_reader(self.efd, self._take)
        try:
            self.loop.run_forever()
        finally:
            try:
                tasks = asyncio.all_tasks(self.loop)
                for task in tasks:
                    task.cancel()
                if tasks:
                    self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            finally:
                self.loop.close()

    def stop_loop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)

    def _take(self):
        """Runs what Go posted: new connections, messages for receive(),
        drained queues, cancellations."""
        for kind, handle, x, y in _asgi_take(self.mailbox):
            if kind == 0:  # start
                x["state"] = dict(self.state)
                req = Request(handle, self.loop, y)
                self.requests[handle] = req
                req.task = self.loop.create_task(self._run(req, x))
                _asgi_tasks[handle] = req.task  # for the live view (stacks)
                continue
            req = self.requests.get(handle)
            if req is None:
                continue  # the app has returned already
            if kind == 1:
                req.deliver(x)
            elif kind == 2:
                req.drained()
            elif kind == 3 and req.task is not None:
                req.task.cancel()

    async def _run(self, req, scope):
        current_app.set(self.app_id)
        current_request.set(req.handle)
        try:
            await self.app(scope, req.receive, req.send)
        except BaseException as exc:  # SystemExit too: it must not stop the loop
            _asgi_done(req.handle, exc)
        else:
            _asgi_done(req.handle, None)
        finally:
            self.requests.pop(req.handle, None)

    # Lifespan: Go calls lifespan("startup") and lifespan("shutdown"),
    # blocking until the app answers.

    def lifespan(self, event, timeout):
        fut = asyncio.run_coroutine_threadsafe(self._lifespan(event), self.loop)
        return fut.result(timeout)

    async def _lifespan(self, event):
        """Returns ("complete", ""), ("failed", message) or
        ("unsupported", traceback)."""
        if not self.lifespan_supported:
            return ("unsupported", "")
        if self.lifespan_task is None:
            self.lifespan_in = asyncio.Queue()
            self.lifespan_out = asyncio.Queue()
            self.lifespan_task = self.loop.create_task(self._lifespan_main())
        await self.lifespan_in.put({"type": "lifespan." + event})
        return await self.lifespan_out.get()

    async def _lifespan_main(self):
        current_app.set(self.app_id)
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        answered = [False]

        async def send(message):
            kind = message.get("type", "")
            if not kind.startswith("lifespan.") or not kind.endswith((".complete", ".failed")):
                raise RuntimeError("wsgi: unexpected lifespan message %r" % (kind,))
            answered[0] = True
            status = "complete" if kind.endswith(".complete") else "failed"
            await self.lifespan_out.put((status, str(message.get("message", ""))))

        try:
            await self.app(scope, self.lifespan_in.get, send)
        except BaseException as exc:
            if not answered[0]:
                # An app that raises on the lifespan scope does not support
                # it: serve without lifespan, as the spec says.
                self.lifespan_supported = False
                await self.lifespan_out.put(("unsupported", format_exception(exc)))
                return
            await self.lifespan_out.put(("failed", "%s: %s" % (type(exc).__name__, exc)))
            return
        # The app returned: nothing more to say to it.
        self.lifespan_supported = False
        await self.lifespan_out.put(("unsupported", ""))


def load_asgi(app, app_id):
    return ASGIApp(app, app_id)


def asgi_relative_paths(app):
    """Whether the app's scopes should carry path without root_path.

    The ASGI spec has path include root_path, and Quart, Starlette 0.33+
    and recent frameworks expect that. Starlette before 0.33 (Debian
    bookworm has 0.26, under FastAPI 0.92) routes on path as it is and
    builds URLs as root_path + path: a Starlette or FastAPI app of that
    age needs path relative to root_path, as WSGI's PATH_INFO.
    """
    if not any(c.__module__.split(".")[0] in ("starlette", "fastapi") for c in type(app).__mro__):
        return False
    starlette = sys.modules.get("starlette")
    version = getattr(starlette, "__version__", "")
    try:
        major, minor = (int(p) for p in version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) < (0, 33)
