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
# task its connection runs in, found in its app's requests: nothing is
# recorded per request for the view).

import weakref

_asgi_apps = weakref.WeakSet()  # every ASGIApp

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
    # Only when asked: it walks the threads of every interpreter.
    current = sys._current_frames() if want.get("threads") else {}
    threads = {}
    for ident in want.get("threads") or ():
        frame = current.get(ident)
        if frame is not None:
            threads[str(ident)] = _frame_list(_thread_frames(frame))
    tasks = {}
    for handle in want.get("tasks") or ():
        req = next((a.requests[handle] for a in list(_asgi_apps) if handle in a.requests), None)
        task = req.task if req is not None else None
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
# Each ASGI app has an asyncio event loop with no thread of its own (see
# RATIONALE.md, "ASGI: a loop that request goroutines drive"). Whichever
# goroutine holds the loop's lock (asgi.go) runs it: asgi.c enters the
# loop on that OS thread (running loop, async-generator hooks, thread id),
# calls one of start(), call() or run_once() here, and leaves. start() runs
# the app's first step at once (an eager task), so an app that does not
# suspend completes in the request's own goroutine. receive() asks Go for
# messages (_asgi_want) and Go delivers them with call(); send() hands each
# message to Go (_asgi_send), which validates and queues it, returning 1
# when its queue is full so that send() waits for drained(). Timers, I/O
# the app waits for (database sockets) and callbacks from other threads
# (call_soon_threadsafe: executors, anyio's worker threads) are run by a
# driver goroutine parked in Go's netpoller on the selector's epoll fd.

import collections

# asyncio is imported with the first ASGI app: a process serving only WSGI
# apps is smaller without it.
asyncio = None
_DrivenLoop = None
_EAGER = sys.version_info >= (3, 12)
_TASK_CONTEXT = sys.version_info >= (3, 11)


def _driven_loop():
    """A new loop of the DrivenLoop class, defined on first use."""
    global asyncio, _DrivenLoop
    if _DrivenLoop is None:
        import asyncio
        import selectors

        class NoWaitSelector(selectors.EpollSelector):
            """Never blocks: the waiting is done by Go, on this selector's
            epoll fd, next to the earliest timer and the loop's kicks."""

            def select(self, timeout=None):
                return super().select(0)

        class DrivenLoop(asyncio.SelectorEventLoop):
            """A SelectorEventLoop stepped one iteration at a time by
            whichever goroutine holds its lock; it never runs
            run_forever()."""

            def __init__(self):
                super().__init__(selector=NoWaitSelector())
                # is_running() is true for the loop's whole life (create_task,
                # eager tasks and call_soon_threadsafe rely on it); asgi.c
                # sets the id of the thread that runs it on every entry.
                self._thread_id = 0

            def settle(self):
                """After Python work in the loop: one bounded iteration if
                callbacks are ready or a timer is due, then what the driver
                must know: -2.0 work is left, -1.0 no timer, else the seconds
                until the earliest timer."""
                ready, scheduled = self._ready, self._scheduled
                if ready or (scheduled and scheduled[0]._when <= self.time()):
                    self._run_once()
                    scheduled = self._scheduled  # _run_once may replace it
                # pending(), inlined: this runs once per step.
                if ready:
                    return -2.0
                if scheduled:
                    return max(0.0, scheduled[0]._when - self.time())
                return -1.0

            def pending(self):
                if self._ready:
                    return -2.0
                if self._scheduled:
                    return max(0.0, self._scheduled[0]._when - self.time())
                return -1.0

            def run_once(self):
                """The driver's iteration: timers due, I/O ready, callbacks."""
                self._run_once()
                return self.pending()

            def selector_fd(self):
                return self._selector.fileno()

            def close(self):
                self._thread_id = None  # not running any more
                super().close()

        _DrivenLoop = DrivenLoop
    return _DrivenLoop()


def is_asgi(app):
    """Whether app looks like an ASGI callable (an async callable)."""
    import inspect

    if inspect.iscoroutinefunction(app):
        return True
    call = getattr(type(app), "__call__", None)
    return call is not None and inspect.iscoroutinefunction(call)


class Request:
    """One ASGI connection scope: its receive and send callables."""

    __slots__ = ("handle", "loop", "first", "inbox", "waiters", "drain", "task")

    def __init__(self, handle, loop, first):
        self.handle = handle
        self.loop = loop
        # The first message, when Go had it at the start (a request
        # without a body): most requests need no queue at all.
        self.first = first
        self.inbox = None
        self.waiters = None
        self.drain = None
        self.task = None

    async def receive(self):
        message = self.first
        if message is not None:
            self.first = None
            return message
        if self.inbox:
            return self.inbox.popleft()
        fut = self.loop.create_future()
        if self.waiters is None:
            self.waiters = collections.deque()
        self.waiters.append(fut)
        _asgi_want(self.handle)
        return await fut

    def deliver(self, message):
        waiters = self.waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(message)
                return
        if self.inbox is None:
            self.inbox = collections.deque()
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
        self.loop = _driven_loop()
        self.state = {}
        self.lifespan_in = None
        self.lifespan_out = None
        self.lifespan_task = None
        self.lifespan_supported = True
        self.requests = {}  # handle -> Request, while its task runs
        # What each connection's context starts from: the app's id, for
        # gohost calls and log records of its tasks and their threads.
        self.context = contextvars.Context()
        self.context.run(current_app.set, app_id)
        _asgi_apps.add(self)

    # Called by asgi.c with the loop entered on the calling thread.

    def start(self, handle, scope, first):
        """Starts a connection's task and runs its first step now."""
        scope["state"] = self.state.copy() if self.state else {}
        req = Request(handle, self.loop, first)
        self.requests[handle] = req
        coro = self._run(req, scope)
        # A context per connection, as uvicorn's tasks have: context
        # variables an app sets do not leak into the next request.
        ctx = self.context.copy()
        if _EAGER:
            req.task = asyncio.Task(coro, loop=self.loop, context=ctx, eager_start=True)
        else:
            # 3.10 and 3.11: schedule the task, then run exactly its first
            # step (the handle just appended) now. Task() as on 3.12+, not
            # loop.create_task (a Python method: more work per request).
            if _TASK_CONTEXT:
                req.task = asyncio.Task(coro, loop=self.loop, context=ctx)
            else:  # 3.10: the task copies the context it is made in
                req.task = ctx.run(asyncio.Task, coro, loop=self.loop)
            self.loop._ready.pop()._run()
        return self.loop.settle()

    def call(self, kind, handle, message):
        """Go's side of a connection: 1 deliver message to receive(), 2 wake
        a send() waiting for Go's queue to drain, 3 cancel the task."""
        req = self.requests.get(handle)
        if req is not None:  # else the app has returned already
            if kind == 1:
                req.deliver(message)
            elif kind == 2:
                req.drained()
            elif kind == 3 and req.task is not None:
                req.task.cancel()
        return self.loop.settle()

    def run_once(self):
        return self.loop.run_once()

    async def _run(self, req, scope):
        current_request.set(req.handle)
        try:
            await self.app(scope, req.receive, req.send)
        except BaseException as exc:  # SystemExit too: it must not stop the loop
            _asgi_done(req.handle, exc)
        else:
            _asgi_done(req.handle, None)
        finally:
            self.requests.pop(req.handle, None)

    # Called by asgi.c without the loop's lock: these block the calling
    # thread (the GIL released) until the driver has run the work.

    def lifespan(self, event, timeout):
        """Sends lifespan.<event>; returns ("complete", ""), ("failed",
        message) or ("unsupported", traceback)."""
        fut = asyncio.run_coroutine_threadsafe(self._lifespan(event), self.loop)
        return fut.result(timeout)

    def shutdown(self, timeout):
        """Cancels the tasks still running and finalizes async generators."""
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
        fut.result(timeout)

    async def _shutdown(self):
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks(self.loop) if t is not me]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.loop.shutdown_asyncgens()

    async def _lifespan(self, event):
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
