package wsgi

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gowsgi/wsgi/internal/check"
	"github.com/gowsgi/wsgi/internal/cpython"
)

// Options configures a Handler. The zero value of each field has a
// documented default; only the app (App, or Module) is required.
type Options struct {
	// Name tags the app in log records. If empty, "module:callable".
	Name string

	// Dir is the app directory. It is put first on sys.path and the
	// module is looked up in it. If empty, the current directory.
	Dir string

	// Module is the module that holds the app, as a file name without
	// ".py" relative to Dir; dotted names ("mysite.wsgi") name a module
	// inside a package under Dir. Required unless App is set.
	Module string

	// Callable is the name of the WSGI callable in Module.
	// If empty, "application".
	Callable string

	// App is a shorthand for Module and Callable: "module:callable", or
	// just "module". It may not be combined with Module or Callable.
	App string

	// Protocol is the app's interface: "wsgi" (PEP 3333), "asgi" (ASGI
	// 3.0, served on an asyncio event loop) or "auto" (an async callable
	// means ASGI). If empty, "wsgi".
	Protocol string

	// Prefix is the URL path the app is mounted at ("/shop"). It becomes
	// SCRIPT_NAME; requests outside it get 404. If empty, the app is
	// mounted at the root (or at whatever http.StripPrefix removed).
	Prefix string

	// Threads is how many requests may be in progress at once, like a
	// threaded WSGI server's threads: a request holds its thread from the
	// app call until its response is written, though it holds the GIL only
	// while Python runs. The rest queue. Apps that block on I/O (databases,
	// HTTP calls) or stream long responses want more. If zero, 8 for a
	// WSGI app and 1024 for an ASGI app (its requests are coroutines on
	// one event loop, not threads).
	Threads int

	// Interpreters is how many Python interpreters the app is imported
	// in, each an isolated sub-interpreter with its own GIL (PEP 684), so
	// that one process runs Python on several cores. Requests (ASGI:
	// connections, each interpreter with its own event loop and lifespan)
	// go to the least busy one; the Threads are shared among them. Needs
	// Python 3.13 or later and extensions that support
	// isolated interpreters (multi-phase init): New fails naming the first
	// one that does not (numpy, PyO3 packages and most Cython modules do
	// not; use one interpreter and the command's -workers instead). Each
	// interpreter has its own modules, globals and caches. Interpreters
	// are never torn down while the process runs: Close returns them to a
	// pool that a later New reuses, and FinalizeOnClose is refused. See
	// docs/interpreters.md. If zero or 1, the app runs in the main
	// interpreter, shared with every other Handler of the process.
	Interpreters int

	// QueueTimeout is how long a request may wait for one of the Threads
	// before it is answered 503 with Retry-After. If zero, 30 seconds.
	QueueTimeout time.Duration

	// PythonPath lists directories added to sys.path after Dir, in order,
	// ahead of the system's packages. If nil, none.
	PythonPath []string

	// Virtualenv is a virtual environment directory whose site-packages
	// (with its .pth files) is added to sys.path after PythonPath, ahead of
	// the system's packages. It must have been created for the Python
	// version this binary links. If empty, none.
	Virtualenv string

	// Env holds extra environ keys added to every request (after the
	// CGI and HTTP_* keys; context values from WithEnviron come last).
	// Keys starting with "wsgi." are refused. An ASGI app finds them, and
	// WithEnviron's, in scope["extensions"]["environ"]. If nil, none.
	Env map[string]string

	// Logger receives the app's wsgi.errors output, its uncaught
	// exceptions and the handler's own messages. If nil, slog.Default().
	Logger *slog.Logger

	// Debug puts the Python traceback in the body of 500 responses.
	// Never turn it on where strangers can reach the app. If false, the
	// body is a plain "500 Internal Server Error".
	Debug bool

	// Static serves the files under <Dir>/static at <Prefix>/static/ from
	// Go (ETag, Last-Modified, Range, precompressed .gz siblings), before
	// the app sees those URLs. If false, those URLs go to the app.
	Static bool

	// BasicAuth, when set, requires HTTP Basic authentication against an
	// htpasswd file of bcrypt hashes before a request reaches the app;
	// the user becomes REMOTE_USER (for an ASGI app, in
	// scope["extensions"]["environ"]). If nil, the handler does not
	// authenticate (Go middleware may, see WithEnviron).
	BasicAuth *BasicAuth

	// Reload re-imports the app when a .py file under Dir changes
	// (debug mode): requests in flight finish on the old code, the next
	// one runs the new code. If false, the app is imported once.
	Reload bool

	// LogFile, when set, also appends the app's log records (wsgi.errors,
	// Python logging, tracebacks) to this file, like IRIS's WSGI.log.
	// If empty, records go to Logger only.
	LogFile string

	// AccessLog logs one record per request at Info level: method, uri
	// (with the query), status, bytes, duration, remote, and aborted for
	// a cut response. If false, there is no access log.
	AccessLog bool

	// Functions are Go functions the app may call from Python:
	// "import gohost; gohost.NAME(*args)" or gohost.call("NAME", *args).
	// If nil, the gohost module has no functions for this app.
	Functions map[string]Func

	// RequestTimeout bounds a request: past it the client gets 504 (or,
	// once the response started, a cut connection) from Go whatever
	// Python is doing, and Python is interrupted with RequestTimeout, an
	// asynchronous exception (it fires at the next Python bytecode, not
	// inside a C call such as time.sleep). The request keeps its thread
	// until Python gives it back (Stats().TimedOut counts those). For ASGI
	// apps the request's task is cancelled. If zero, no bound.
	RequestTimeout time.Duration

	// BodyReadTimeout bounds each read of the request body: an upload that
	// stalls longer makes wsgi.input.read raise (and, if the app lets it
	// propagate before responding, the client gets 408). A slow but steady
	// upload is fine: the bound is per read. If zero, 60 seconds; if
	// negative, none.
	BodyReadTimeout time.Duration

	// TrustedProxies lists the networks ("10.0.0.0/8") or addresses of
	// reverse proxies whose X-Forwarded-For, X-Forwarded-Proto and
	// Forwarded headers are believed: from them, REMOTE_ADDR becomes the
	// client's address and the scheme the client's. "unix" stands for
	// every peer on a Unix socket (a proxy on the same host; the socket's
	// permissions decide who may connect). If nil, those headers change
	// nothing (they still reach the app as HTTP_* keys).
	TrustedProxies []string

	// MaxBodyBytes caps the request body. A declared Content-Length above
	// it gets 413 before the app runs; a chunked body that grows past it
	// makes wsgi.input.read raise. If zero, there is no limit.
	MaxBodyBytes int64

	// WebSocketCompression is what an ASGI app's WebSockets negotiate of
	// permessage-deflate (RFC 7692) when the client offers it:
	// "no-context-takeover" compresses each message of 512 bytes or more
	// on its own, with compressors shared by every connection, so the
	// memory it takes grows with the messages being compressed at once,
	// not with the connections open; "context-takeover" keeps each
	// connection's window (better ratios on repetitive messages, about
	// 0.85 MiB per connection); "off" never compresses. Decompressed
	// messages stay within the read limit (MaxBodyBytes, or 16 MiB). If
	// empty, "no-context-takeover".
	WebSocketCompression string

	// FinalizeOnClose finalizes the interpreter (atexit handlers run,
	// non-daemon Python threads are joined) once this Handler is closed
	// and no other Handler is open: when every open Handler was closed,
	// the last Close or Shutdown finalizes, within its ctx. A Shutdown
	// that times out with a request stuck finalizes nothing. New fails
	// afterwards, since CPython cannot be started twice in one process, so
	// leave it off in tests that create Handlers one after another. If
	// false, the interpreter lives until the process exits (see Finalize).
	FinalizeOnClose bool
}

// Default values used when an Options field is zero.
const (
	defaultCallable        = "application"
	defaultThreads         = 8
	defaultQueueTimeout    = 30 * time.Second
	defaultBodyReadTimeout = 60 * time.Second
)

// config is Options after defaults and validation.
type config struct {
	name            string
	dir             string // absolute
	module          string
	callable        string
	prefix          string // "" or "/x" without a trailing slash
	threads         int
	interpreters    int // sub-interpreters; 0: the main interpreter
	queueTimeout    time.Duration
	pythonPath      []string // absolute
	sitePackages    string   // absolute, "" if no virtualenv
	env             map[string]string
	logger          *slog.Logger
	debug           bool
	maxBodyBytes    int64
	static          bool
	basicAuth       *BasicAuth
	reload          bool
	logFile         string
	accessLog       bool
	functions       map[string]Func
	protocol        string // "wsgi", "asgi" or "auto"
	trusted         trustedProxies
	bodyReadTimeout time.Duration
	requestTimeout  time.Duration
	finalizeOnClose bool
	wsCompression   wsCompression
}

// resolve validates o and fills in defaults. It touches the file system
// (to make paths absolute and check that they exist) but not Python.
func (o Options) resolve(pythonVersion string) (*config, error) {
	c := &config{
		module:          o.Module,
		callable:        o.Callable,
		threads:         o.Threads,
		queueTimeout:    o.QueueTimeout,
		logger:          o.Logger,
		debug:           o.Debug,
		maxBodyBytes:    o.MaxBodyBytes,
		finalizeOnClose: o.FinalizeOnClose,
		static:          o.Static,
		basicAuth:       o.BasicAuth,
		reload:          o.Reload,
		logFile:         o.LogFile,
		accessLog:       o.AccessLog,
		functions:       o.Functions,
	}
	if o.App != "" {
		if o.Module != "" || o.Callable != "" {
			return nil, errors.New("wsgi: App may not be combined with Module or Callable")
		}
		mod, call, found := strings.Cut(o.App, ":")
		if found && call == "" {
			return nil, fmt.Errorf("wsgi: App %q: empty callable after ':'", o.App)
		}
		c.module, c.callable = mod, call
	}
	if c.module == "" {
		return nil, errors.New("wsgi: no app: set App or Module")
	}
	switch o.WebSocketCompression {
	case "", "no-context-takeover":
		c.wsCompression = wsNoContextTakeover
	case "context-takeover":
		c.wsCompression = wsContextTakeover
	case "off":
		c.wsCompression = wsCompressionOff
	default:
		return nil, fmt.Errorf("wsgi: WebSocketCompression %q: want no-context-takeover, context-takeover or off", o.WebSocketCompression)
	}
	switch o.Protocol {
	case "", "wsgi":
		c.protocol = "wsgi"
	case "asgi", "auto":
		c.protocol = o.Protocol
	default:
		return nil, fmt.Errorf("wsgi: Protocol %q: want wsgi, asgi or auto", o.Protocol)
	}
	if !check.DottedName(c.module) {
		return nil, fmt.Errorf("wsgi: module %q is not a Python module name (write it without .py; use dots for packages)", c.module)
	}
	if c.callable == "" {
		c.callable = defaultCallable
	}
	if !check.DottedName(c.callable) {
		return nil, fmt.Errorf("wsgi: callable %q is not a Python name", c.callable)
	}
	c.name = o.Name
	if c.name == "" {
		c.name = c.module + ":" + c.callable
	}

	dir := o.Dir
	if dir == "" {
		dir = "."
	}
	var err error
	if c.dir, err = existingDir(dir, "Dir"); err != nil {
		return nil, err
	}
	for _, p := range o.PythonPath {
		abs, err := existingDir(p, "PythonPath")
		if err != nil {
			return nil, err
		}
		c.pythonPath = append(c.pythonPath, abs)
	}
	if o.Virtualenv != "" {
		venv, err := existingDir(o.Virtualenv, "Virtualenv")
		if err != nil {
			return nil, err
		}
		sp := filepath.Join(venv, "lib", "python"+pythonVersion, "site-packages")
		if _, err := existingDir(sp, "Virtualenv"); err != nil {
			return nil, fmt.Errorf("wsgi: Virtualenv %s has no site-packages for Python %s (%s)", venv, pythonVersion, sp)
		}
		c.sitePackages = sp
	}

	if c.prefix, err = cleanPrefix(o.Prefix); err != nil {
		return nil, err
	}
	if c.threads < 0 {
		return nil, fmt.Errorf("wsgi: Threads %d is negative", c.threads)
	}
	if c.threads == 0 {
		c.threads = defaultThreads
	}
	if err := c.resolveInterpreters(o, pythonVersion); err != nil {
		return nil, err
	}
	if c.queueTimeout < 0 {
		return nil, fmt.Errorf("wsgi: QueueTimeout %v is negative", c.queueTimeout)
	}
	if c.queueTimeout == 0 {
		c.queueTimeout = defaultQueueTimeout
	}
	if c.maxBodyBytes < 0 {
		return nil, fmt.Errorf("wsgi: MaxBodyBytes %d is negative", c.maxBodyBytes)
	}
	for k := range o.Env {
		if strings.HasPrefix(k, "wsgi.") || k == "" {
			return nil, fmt.Errorf("wsgi: Env key %q is reserved", k)
		}
	}
	c.env = o.Env
	if o.RequestTimeout < 0 {
		return nil, fmt.Errorf("wsgi: RequestTimeout %v is negative", o.RequestTimeout)
	}
	c.requestTimeout = o.RequestTimeout
	switch {
	case o.BodyReadTimeout == 0:
		c.bodyReadTimeout = defaultBodyReadTimeout
	case o.BodyReadTimeout > 0:
		c.bodyReadTimeout = o.BodyReadTimeout
	}
	if c.trusted, err = parseTrustedProxies(o.TrustedProxies); err != nil {
		return nil, err
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	c.logger = c.logger.With("app", c.name)
	return c, nil
}

// cleanPrefix turns "/shop/" into "/shop" and "/" into "".
func cleanPrefix(p string) (string, error) {
	if p == "" || p == "/" {
		return "", nil
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("wsgi: Prefix %q must start with /", p)
	}
	p = strings.TrimRight(p, "/")
	if strings.Contains(p, "//") || strings.ContainsAny(p, "?#%\x00") {
		return "", fmt.Errorf("wsgi: Prefix %q must be a plain path", p)
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "." || seg == ".." {
			return "", fmt.Errorf("wsgi: Prefix %q must not contain . or .. segments", p)
		}
	}
	return p, nil
}

func existingDir(p, field string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("wsgi: %s %q: %w", field, p, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("wsgi: %s: %w", field, err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("wsgi: %s %s is not a directory", field, abs)
	}
	return abs, nil
}

// minInterpretersVersion is the first Python whose isolated
// sub-interpreters served our tests without crashing: 3.12.1 crashed when
// two of them imported datetime, email or asyncio (docs/interpreters.md).
const minInterpretersVersion = 13 // 3.13

// resolveInterpreters checks Options.Interpreters.
func (c *config) resolveInterpreters(o Options, pythonVersion string) error {
	n := o.Interpreters
	switch {
	case n < 0:
		return fmt.Errorf("wsgi: Interpreters %d is negative", n)
	case n <= 1:
		return nil
	case n > cpython.MaxInterpreters:
		return fmt.Errorf("wsgi: Interpreters %d: at most %d", n, cpython.MaxInterpreters)
	}
	major, minor, _ := strings.Cut(pythonVersion, ".")
	if m, err := strconv.Atoi(minor); major != "3" || err != nil || m < minInterpretersVersion {
		return fmt.Errorf("wsgi: Interpreters %d needs Python 3.%d or later (isolated sub-interpreters crash on older ones); this binary links Python %s", n, minInterpretersVersion, pythonVersion)
	}
	if o.FinalizeOnClose {
		return fmt.Errorf("wsgi: FinalizeOnClose cannot be combined with Interpreters %d: sub-interpreters are never torn down while the process runs", n)
	}
	if o.Threads != 0 && o.Threads < n {
		return fmt.Errorf("wsgi: Threads %d is fewer than Interpreters %d: some interpreters would never serve", o.Threads, n)
	}
	if c.threads < n {
		c.threads = n
	}
	c.interpreters = n
	return nil
}
