// Package wsgi runs Python web applications (PEP 3333 WSGI apps: Flask,
// Django, Falcon, Bottle, Pyramid, ...) inside a Go process. A Handler is
// an http.Handler that owns the app; the process embeds one CPython
// interpreter, started by the first New.
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
// py310, py312, py313 and py314 link another version (see the README).
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
// ", ", cookies with "; "); headers whose name holds "_", and the Proxy
// header, are dropped. Then the wsgi.* keys: wsgi.input streams the body
// (read, readline, readlines and iteration return what io.BytesIO would),
// wsgi.errors logs one record per line, wsgi.file_wrapper sends regular
// files with sendfile. Options.Env and WithEnviron (for Go middleware,
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
package wsgi
