// Package wsgi runs Python web applications inside a Go process: WSGI apps
// (PEP 3333: Flask, Django, Falcon, Bottle, Pyramid, ...) and ASGI 3.0 apps
// (Starlette, FastAPI, Quart, ...). A Handler is an http.Handler that owns
// the app; the process embeds one CPython interpreter, started by the
// first New. Package github.com/gowsgi/wsgi/config serves several apps
// described by a TOML file.
//
// # Quick start
//
//	h, err := wsgi.New(wsgi.Options{Dir: "./app", App: "app:app", Prefix: "/py"})
//	if err != nil {
//		log.Fatalf("%+v", err) // %+v prints the Python traceback
//	}
//	defer h.Close()
//	mux := http.NewServeMux()
//	mux.Handle("/py/", h)
//	mux.HandleFunc("/health", health) // Go routes next to the app
//	log.Fatal(http.ListenAndServe("127.0.0.1:8080", mux))
//
// Building needs cgo and the Python headers (Debian: python3-dev and
// pkg-config). The default build links the system Python; build tags
// py310, py312, py313 and py314 link another version (see
// docs/deployment.md in the repository). The repository's docs/ folder is
// the manual: the wsgi command and its configuration file, worker
// processes, limits, deployment and performance.
//
// # The app string
//
// Options.App is "module:callable" or just "module" (the callable is then
// "application"), as gunicorn and uWSGI take it. The module is a file
// under Options.Dir, without ".py"; a dotted name ("mysite.wsgi") is a
// module inside a package there. The callable may be dotted too
// ("factory.app"). The app's module is loaded under a name of its own, so
// two apps whose module is called "app" in different directories do not
// collide; the modules they import are shared process-wide.
//
// # Concurrency, threads and the GIL
//
// This section and the next two are about WSGI apps; see ASGI below.
// At most Options.Threads requests of a Handler are in progress at once,
// like the threads of a threaded WSGI server; others wait up to
// Options.QueueTimeout and then get 503 with Retry-After. A
// request's goroutine is pinned to an OS thread with its own Python thread
// state for the whole request (the app call, the body iteration and
// close()), so threading.local and contextvars behave as under a threaded
// WSGI server, and wsgi.multithread is True. The GIL is held only while
// Python runs: it is released while Go reads the request body or writes to
// the client, so a slow client never holds up other requests' Python
// work (it does keep its own request's thread until it is served). Python's main
// thread is an OS thread of its own where apps are imported; requests never
// run there.
//
// One interpreter runs Python on about one core. Options.Interpreters
// imports the app in several isolated sub-interpreters, each with its own
// GIL (Python 3.13+, apps whose extensions support them): a request goes
// to the least busy one and runs there from start to end (an ASGI app gets
// an event loop and a lifespan in each). See
// docs/interpreters.md.
//
// Python's signal handlers are off: Go owns the process' signals. A
// handler an app installs while it is imported is undone and logged.
//
// # Environ
//
// The environ has the CGI keys REQUEST_METHOD, SCRIPT_NAME, PATH_INFO
// (percent-decoded path bytes as a latin-1 str), QUERY_STRING (raw),
// CONTENT_TYPE, CONTENT_LENGTH, SERVER_NAME, SERVER_PORT, SERVER_PROTOCOL,
// SERVER_SOFTWARE, REMOTE_ADDR, REMOTE_PORT, REQUEST_URI, HTTPS=on under
// TLS, and an HTTP_* key per request header (repeated headers joined with
// ", ", cookies with "; "); headers whose name holds anything but
// letters, digits and "-" (such as "_", which would read as "-"), and the
// Proxy header, are dropped. Then the wsgi.* keys: wsgi.input streams the body
// (read, readline, readlines and iteration return what io.BytesIO would),
// wsgi.errors logs one record per line, wsgi.file_wrapper sends regular
// files with sendfile, wsgi.early_hints(headers) sends a 103 Early Hints
// response (headers validated like the final ones; not to HTTP/1.0
// clients, and only before the response starts). A chunked body adds
// HTTP_TRANSFER_ENCODING. Options.Env and WithEnviron (for Go middleware,
// such as an authentication layer setting REMOTE_USER) add keys.
//
// SCRIPT_NAME + PATH_INFO always rebuild the path the client asked for,
// whether the mount point comes from Options.Prefix, from an
// http.StripPrefix in front of the handler, or both.
//
// # Errors
//
// start_response validates the status and headers strictly; a bad value
// raises inside the app. An exception before the response started is
// logged with its traceback and answered 500 (with the traceback in the
// body only when Options.Debug is on); after it started, the connection is
// aborted so the client sees the response is incomplete. SystemExit and
// KeyboardInterrupt from an app are errors like any other: they never end
// the process. An app that fails to import makes New return an error
// wrapping a *PythonError; print it with %+v for the traceback.
//
// # ASGI
//
// With Options.Protocol "asgi" (or "auto" and an async callable) the app
// is served as ASGI 3.0. Each app has one asyncio event loop with no
// thread of its own: the goroutine serving a request runs it, and a
// driver goroutine runs timers, the app's sockets and callbacks from
// other threads. Every request is a task on that loop, and Options.Threads (default 1024)
// bounds requests in progress, WebSockets included. send() hands a
// message to Go, which validates it and queues it for the request's
// goroutine without waiting for the network; send() waits only while
// more than 1 MiB of body is queued. receive() returns body chunks read
// in the background, then http.disconnect once the response is complete
// or the client left; after the client left, send() raises OSError.
//
// The scope's root_path is the mount, and path includes it as the spec
// says, except for Starlette and FastAPI apps on Starlette before 0.33,
// which route on path as it is: they get path relative to root_path,
// like PATH_INFO. Lifespan startup runs in New (a failure is New's
// error) and shutdown in Close; scope["state"] is a copy of the lifespan
// state. The http.response.trailers, http.response.pathsend,
// http.response.early_hint (103 Early Hints) and websocket.http.response
// extensions are supported. WebSockets use github.com/gobwas/ws, with
// github.com/klauspost/compress's deflate; checking Origin is the app's job, and
// messages are limited to Options.MaxBodyBytes (16 MiB if zero).
// permessage-deflate is negotiated as Options.WebSocketCompression says.
// Options.Env, WithEnviron's keys and BasicAuth's REMOTE_USER and
// AUTH_TYPE reach an ASGI app in scope["extensions"]["environ"].
//
// # The Go bridge
//
// Options.Functions are Go functions Python code calls as
// gohost.NAME(*args) or gohost.call("NAME", *args) after "import gohost".
// Arguments and results convert as documented on Func; a returned error
// or a panic raises RuntimeError, an unknown name AttributeError, a value
// that does not convert TypeError. The GIL is released while the Go
// function runs (an ASGI app's event loop waits for it). A call reaches
// the app the calling code works for, with its request's context: the
// thread's WSGI request, the ASGI task (worker threads that copy its
// context too), a thread the app started, or the app being imported.
// Code with no app reaches the only app with Functions, if there is
// exactly one.
//
// Python's logging goes to Go too: a handler on the root logger sends
// each record to the Logger of the app that emitted it, with its level
// mapped to slog's, and logging.basicConfig keeps working. Each record is
// logged once: a record that a handler of the app's own logging set-up
// emits (on its logger or an ancestor it propagates to, admitted by the
// handler's level and filters; NullHandler and mail handlers do not
// count) is not sent to Go. Options.LogFile also appends the app's
// records to a file; Options.AccessLog adds one record per request.
//
// # Reload
//
// With Options.Reload the app directory is watched (fsnotify). After a
// .py file changes, the modules loaded from files under Options.Dir are
// removed from sys.modules and the app is imported again as a new
// generation: requests in flight finish on the old code, whose Python
// objects are freed with its last request, and the next request runs the
// new code. A failed import answers 500 (with the traceback when Debug is
// on) until a later change fixes it. C extensions, modules outside Dir
// and frameworks with process-wide registries (Django) are not reloaded;
// restart for those. It is meant for development.
//
// # Metrics
//
// Handler.Metrics returns a snapshot of a handler's counters: requests
// by method and status, duration, queue-wait and GIL-wait histograms, the
// limits' answers (503, 413, 408, 504), reloads, the app's exceptions,
// body bytes, open WebSockets and ASGI tasks. The request path keeps them
// with atomics, without allocations. Handler.PythonGC reads the
// interpreter's garbage collector on demand. Package
// github.com/gowsgi/wsgi/metrics exports both to Prometheus.
//
// # Live view
//
// Handler.Snapshot lists the requests in progress (method, path, client,
// elapsed time, state) with the Python stack serving each: the thread's
// for WSGI, the task's coroutine chain for ASGI. It takes the GIL once.
// Package github.com/gowsgi/wsgi/debugview serves it as an HTML page and
// as JSON.
package wsgi
