// Command wsgi serves a Python WSGI app over HTTP from an embedded CPython.
//
//	wsgi -addr 127.0.0.1:8080 -dir DIR -app module:callable [-prefix /mnt] [-threads N] [-reload | -debug]
//	wsgi -config apps.toml [-addr host:port] [-log-format text|json]
//
// With -config it serves every app of a TOML file, each at its prefix
// (see package github.com/gowsgi/wsgi/config for the format); -addr,
// -log-format, -workers and the recycling flags, when given, override the
// file's addr, log_format, workers, max_requests, max_requests_jitter and
// max_rss (and -socket-mode, -socket-owner and -proxy-protocol its
// socket_mode, socket_owner and proxy_protocol). The flags that describe
// one app (-dir, -max-body, -request-timeout, ...) are refused with
// -config: each app sets them with its keys in the file (dir, max_body,
// request_timeout, ...).
//
// -reload re-imports the app when a .py file under -dir changes; -debug
// does that too and puts Python tracebacks in 500 responses, as the config
// file's debug key. Both are for development.
//
// SIGTERM or SIGINT stops it gracefully: it stops accepting connections,
// lets requests in flight finish (up to -shutdown-timeout) and exits 0.
//
// -tls-cert and -tls-key serve HTTPS (HTTP/2 by ALPN) with a pair reloaded
// when its files change, -acme-domain gets the certificate from an ACME
// CA instead, -h2c serves cleartext HTTP/2 and -http3 HTTP/3 over UDP
// (see tls.go, acme.go and http3.go, and docs/deployment.md).
//
// -workers N (or the config file's workers key) above 1 makes it a master
// that imports no Python: it binds the listening socket once and runs N
// worker processes (this binary again) that share it, replaces a worker
// that dies, and replaces workers one at a time on SIGHUP (new code) or
// past -max-requests / -max-rss. See master.go.
//
// -addr repeats, and takes unix:/path/to.sock for a Unix socket
// (-socket-mode, -socket-owner); sockets passed by systemd (socket
// activation: LISTEN_PID, LISTEN_FDS) replace it. -proxy-protocol reads
// PROXY protocol headers from -trusted-proxies. See listeners.go,
// systemd.go, proxyproto.go and docs/deployment.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/gowsgi/wsgi"
	"github.com/gowsgi/wsgi/config"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// stdout receives -version output; a variable so tests can capture it.
var stdout io.Writer = os.Stdout

func main() {
	finalizeOnExit = true
	if isWorker() {
		// Only the master's SIGTERM stops a worker, and every one of them
		// drains: a second signal must not kill it (the master kills it
		// past the grace period). Ctrl-C and a terminal's hangup reach the
		// whole process group; the master forwards what it decides.
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		signal.Notify(make(chan os.Signal, 1), os.Interrupt, syscall.SIGHUP)
		os.Exit(run(ctx, os.Args[1:], os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	go func() {
		// After the first signal, restore the default action so that a
		// second Ctrl-C kills a shutdown that hangs.
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

// flags holds the parsed command line.
type flags struct {
	dir             string
	app             string
	module          string
	callable        string
	prefix          string
	protocol        string
	threads         int
	interpreters    int
	queueTimeout    time.Duration
	maxBody         int64
	wsCompression   string
	bodyTimeout     time.Duration
	requestTimeout  time.Duration
	trustedProxies  string
	debug           bool
	reload          bool
	logFormat       string
	logLevel        slog.Level
	shutdownTimeout time.Duration
	version         bool
	config          string
	workers         config.Workers
	maxRequests     int
	maxJitter       int
	maxRSS          int
	pinWorkers      bool
	adminAddr       string
	adminPublic     bool
	set             map[string]bool // the flags given on the command line

	// Listening: listeners.go, systemd.go, proxyproto.go.
	addrs         addrList
	socketMode    string
	socketOwner   string
	proxyProtocol bool
	systemd       []systemdFD   // the sockets systemd passed, if any
	listen        *listenConfig // built by run from the above and the config file

	tls tlsOptions // TLS, HTTP/2, HTTP/3 and ACME (tls.go)
}

// appFlags describe one app on the command line; -config may not be
// combined with them. key is what the config file says instead.
var appFlags = []struct{ flag, key string }{
	{"app", "module and callable"},
	{"module", "module"},
	{"callable", "callable"},
	{"dir", "dir"},
	{"prefix", "prefix"},
	{"protocol", "protocol"},
	{"threads", "threads"},
	{"interpreters", "interpreters"},
	{"debug", "debug"},
	{"reload", "reload"},
	{"queue-timeout", "queue_timeout"},
	{"max-body", "max_body"},
	{"ws-compression", "websocket_compression"},
	{"body-timeout", "body_timeout"},
	{"request-timeout", "request_timeout"},
	{"trusted-proxies", "trusted_proxies"},
}

// parseFlags parses args. It returns a non-nil error after printing the
// problem and the usage; flag.ErrHelp for -h.
func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	var f flags
	fs := flag.NewFlagSet("wsgi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: wsgi [-addr host:port] [-dir DIR] -app module[:callable] [flags]\n")
		fmt.Fprintf(fs.Output(), "       wsgi [-addr host:port] -config FILE [flags]\n\n")
		fs.PrintDefaults()
	}
	f.addrs.addrs = []string{"127.0.0.1:8080"}
	fs.Var(&f.addrs, "addr", "`host:port` or unix:/path/to.sock to listen on; repeat it to listen on several "+
		"(port 0 picks a free port; the startup log shows it). Sockets passed by systemd (LISTEN_FDS) replace it")
	fs.StringVar(&f.socketMode, "socket-mode", "", "permission bits of the unix sockets of -addr, in `octal` (0660); default: as the umask leaves them")
	fs.StringVar(&f.socketOwner, "socket-owner", "", "`user[:group]` (names or ids) owning the unix sockets of -addr; changing the user needs privileges")
	fs.BoolVar(&f.proxyProtocol, "proxy-protocol", false, "read a PROXY protocol header (v1 or v2) on each connection: required from -trusted-proxies "+
		"(with -config: the file's proxy_protocol_from) and from unix-socket peers, refused from any other peer")
	fs.StringVar(&f.dir, "dir", ".", "app `directory`, put first on sys.path")
	fs.StringVar(&f.app, "app", "", "the app as `module:callable` (callable defaults to application)")
	fs.StringVar(&f.module, "module", "", "module holding the app, instead of -app")
	fs.StringVar(&f.callable, "callable", "", "name of the app's callable in -module (default application)")
	fs.StringVar(&f.prefix, "prefix", "", "URL `path` the app is mounted at; it becomes SCRIPT_NAME and other paths get 404")
	fs.StringVar(&f.protocol, "protocol", "wsgi", "the app's interface: wsgi, asgi, or auto (an async callable means ASGI)")
	fs.IntVar(&f.threads, "threads", 0, "requests in the app at once (0 means the library default: 8, or 1024 for an ASGI app)")
	fs.IntVar(&f.interpreters, "interpreters", 0, "import the app in `N` isolated Python sub-interpreters, each with its own GIL, so that one process runs Python on N cores "+
		"(Python 3.13+, apps whose extensions support isolated interpreters; 0 or 1: the main interpreter; see docs/interpreters.md)")
	fs.DurationVar(&f.queueTimeout, "queue-timeout", 0, "how long a request waits for a thread before a 503 (0 means the library default, 30s)")
	fs.Int64Var(&f.maxBody, "max-body", 0, "largest request body in `bytes` (0 means no limit)")
	fs.StringVar(&f.wsCompression, "ws-compression", "", "WebSocket permessage-deflate: no-context-takeover (the default when empty), context-takeover or off")
	fs.DurationVar(&f.bodyTimeout, "body-timeout", 0, "longest wait for each read of a request body (0 means the library default, 60s; negative: none)")
	fs.DurationVar(&f.requestTimeout, "request-timeout", 0, "longest a request may take before the client gets 504 (0 means none)")
	fs.StringVar(&f.trustedProxies, "trusted-proxies", "", "comma-separated `networks` (CIDRs or addresses; unix: every peer on a unix socket) whose X-Forwarded-For, X-Forwarded-Proto and Forwarded headers are believed "+
		"(and, with -proxy-protocol, that must send a PROXY header)")
	fs.BoolVar(&f.debug, "debug", false, "development: put Python tracebacks in 500 responses (never where strangers can reach the app) and reload as -reload")
	fs.BoolVar(&f.reload, "reload", false, "development: re-import the app when a .py file under -dir changes (requests in flight finish on the old code)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.TextVar(&f.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long requests in flight may take to finish after SIGTERM or SIGINT")
	fs.TextVar(&f.workers, "workers", config.Workers(1), "worker `processes` sharing the listening socket, or auto (one per CPU); above 1 the command is a master that imports no Python")
	fs.IntVar(&f.maxRequests, "max-requests", 0, "with -workers: replace a worker after this many requests (0 means never)")
	fs.IntVar(&f.maxJitter, "max-requests-jitter", 0, "with -max-requests: add a random 0..`N` requests per worker, so that workers do not restart together")
	fs.BoolVar(&f.pinWorkers, "pin-workers", true, "with -workers: pin each worker to one CPU of those the command may use, round robin "+
		"(Python threads of one process on several CPUs fight over its GIL; see docs/workers.md)")
	fs.IntVar(&f.maxRSS, "max-rss", 0, "with -workers: replace a worker whose resident memory is above this many `MiB` (0 means never)")
	fs.StringVar(&f.adminAddr, "admin-addr", "", "`host:port` of the admin endpoint: /metrics, /healthz, /readyz, the live view at /debug/wsgi/ and /debug/pprof/ "+
		"(empty: none; with -workers it covers every worker)")
	fs.BoolVar(&f.adminPublic, "admin-public", false, "allow an -admin-addr that is not loopback (the live view shows clients' requests; pprof profiles the process)")
	fs.BoolVar(&f.version, "version", false, "print the Python version and executable, then exit")
	fs.StringVar(&f.config, "config", "", "serve the apps of a TOML `file` instead of one app from the flags; -addr, -socket-mode, -socket-owner, -proxy-protocol, -log-format, -workers and "+
		"the recycling flags override its settings; "+
		"the flags that describe one app (-dir, -threads, -max-body, the timeouts, -trusted-proxies, ...) are refused: set the app's keys in the file")
	f.tls.register(fs) // tls.go

	if err := fs.Parse(args); err != nil {
		return nil, err // the flag package has printed the problem and usage
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	usageErr := func(format string, a ...any) error {
		err := fmt.Errorf("wsgi: "+format, a...)
		fmt.Fprintln(stderr, err)
		fs.Usage()
		return err
	}
	switch {
	case fs.NArg() > 0:
		return nil, usageErr("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	case f.version:
		return &f, nil
	case f.config != "":
		for _, af := range appFlags {
			if f.set[af.flag] {
				return nil, usageErr("-config may not be combined with -%s: the config file describes the apps (set %s in each [[app]])",
					af.flag, af.key)
			}
		}
	case f.app != "" && (f.module != "" || f.callable != ""):
		return nil, usageErr("-app may not be combined with -module or -callable")
	case f.app == "" && f.module == "":
		return nil, usageErr("no app: set -app or -module")
	}
	switch {
	case f.logFormat != "text" && f.logFormat != "json":
		return nil, usageErr("-log-format must be text or json, not %q", f.logFormat)
	case f.threads < 0:
		return nil, usageErr("-threads must not be negative")
	case f.interpreters < 0:
		return nil, usageErr("-interpreters must not be negative")
	case f.queueTimeout < 0:
		return nil, usageErr("-queue-timeout must not be negative")
	case f.maxBody < 0:
		return nil, usageErr("-max-body must not be negative")
	case f.requestTimeout < 0:
		return nil, usageErr("-request-timeout must not be negative")
	case f.shutdownTimeout < 0:
		return nil, usageErr("-shutdown-timeout must not be negative")
	case f.maxRequests < 0:
		return nil, usageErr("-max-requests must not be negative")
	case f.maxJitter < 0:
		return nil, usageErr("-max-requests-jitter must not be negative")
	case f.maxRSS < 0:
		return nil, usageErr("-max-rss must not be negative")
	}
	// Listening: the values the flags give are checked here, the file's
	// once it is loaded.
	if f.socketMode != "" {
		if _, err := parseSocketMode(f.socketMode); err != nil {
			return nil, usageErr("-socket-mode: %v", err)
		}
	}
	if f.config == "" { // with -config, once the file's keys are in (runConfig)
		if err := f.tls.check(); err != nil {
			return nil, usageErr("%s", err)
		}
	}
	if f.socketOwner != "" {
		if _, _, err := parseSocketOwner(f.socketOwner); err != nil {
			return nil, usageErr("-socket-owner: %v", err)
		}
	}
	return &f, nil
}

// run is the whole command: it serves until ctx is done, then shuts down
// gracefully. It returns the process exit code.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	f, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	if f.version {
		exe := wsgi.PythonExecutable()
		if exe == "" {
			exe = "(not found)"
		}
		fmt.Fprintf(stdout, "Python %s\nsys.executable %s\n", wsgi.PythonVersion(), exe)
		return exitOK
	}

	wk, err := inheritWorker()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFail
	}
	if wk == nil {
		// Before the app imports: it may start subprocesses.
		if f.systemd, err = takeSystemdFDs(); err != nil {
			fmt.Fprintln(stderr, err)
			return exitFail
		}
	}
	if f.config != "" {
		return runConfig(ctx, f, args, wk, stderr)
	}
	logger := newLogger(stderr, f.logFormat, f.logLevel)
	app := f.app
	if app == "" {
		app = f.module
		if f.callable != "" {
			app += ":" + f.callable
		}
	}
	attrs := []any{
		"app", app,
		"dir", absDir(f.dir),
		"prefix", f.prefix,
		"protocol", f.protocol,
	}
	if f.listen, err = newListenConfig(f, nil, logger); err != nil {
		logger.Error("wsgi: bad listener settings", "err", err)
		return exitFail
	}
	if wk == nil && f.workers.Count() > 1 {
		var watch []string
		if f.debug || f.reload {
			watch = []string{absDir(f.dir)}
		}
		return runMaster(ctx, logger, f, args, stderr, attrs, watch)
	}
	if wk != nil {
		logger = logger.With("worker", wk.id)
	} else {
		warnWorkerFlags(logger, f)
	}
	adm, err := openProcessAdmin(ctx, logger, f, wk)
	if err != nil {
		logger.Error("wsgi: cannot serve the admin endpoint", "err", err)
		return exitFail
	}
	defer adm.close()
	sec, err := newSecure(&f.tls, logger, wk != nil) // tls.go
	if err != nil {
		logger.Error("wsgi: cannot serve tls", "err", err)
		return exitFail
	}
	h, err := wsgi.New(wsgi.Options{
		Dir:                  f.dir,
		App:                  f.app,
		Module:               f.module,
		Callable:             f.callable,
		Prefix:               f.prefix,
		Protocol:             f.protocol,
		Threads:              f.threads,
		Interpreters:         f.interpreters,
		QueueTimeout:         f.queueTimeout,
		MaxBodyBytes:         f.maxBody,
		WebSocketCompression: f.wsCompression,
		BodyReadTimeout:      f.bodyTimeout,
		RequestTimeout:       f.requestTimeout,
		TrustedProxies:       splitList(f.trustedProxies),
		Debug:                f.debug,
		Reload:               (f.debug || f.reload) && wk == nil, // a worker's master restarts it instead
		Logger:               logger,
	})
	if err != nil {
		logLoadError(logger, stderr, f.logFormat == "json", err)
		return exitFail
	}
	tune(sec != nil)
	adm.setHandlers(h)
	// The handler answers 404 outside -prefix itself.
	return serve(ctx, logger, wk.withLimits(f), sec, f.listen, f.shutdownTimeout, h, h.Close, attrs...)
}

// warnWorkerFlags warns about recycling settings that only workers use.
func warnWorkerFlags(logger *slog.Logger, f *flags) {
	if f.maxRequests > 0 || f.maxRSS > 0 {
		logger.Warn("wsgi: max requests and max rss apply to worker processes only (workers 2 or more); ignored",
			"max_requests", f.maxRequests, "max_rss", f.maxRSS)
	}
}

// runConfig serves the apps of the -config file. wk is this process's
// link to its master, nil outside worker processes.
func runConfig(ctx context.Context, f *flags, args []string, wk *workerConn, stderr io.Writer) int {
	cfg, err := config.Load(f.config)
	if err != nil {
		logConfigError(newLogger(stderr, f.logFormat, f.logLevel), stderr, f.logFormat == "json", f.config, err)
		return exitFail
	}
	format := cfg.LogFormat
	if f.set["log-format"] || format == "" {
		format = f.logFormat
	}
	// The command line wins over the file, as for addr.
	if !f.set["workers"] && cfg.Workers != 0 {
		f.workers = cfg.Workers
	}
	if !f.set["max-requests"] {
		f.maxRequests = cfg.MaxRequests
	}
	if !f.set["max-requests-jitter"] {
		f.maxJitter = cfg.MaxRequestsJitter
	}
	if !f.set["max-rss"] {
		f.maxRSS = cfg.MaxRSS
	}
	if !f.set["admin-addr"] {
		f.adminAddr = cfg.AdminAddr
	}
	if !f.set["admin-public"] {
		f.adminPublic = cfg.AdminPublic
	}
	f.logFormat = format
	logger := newLogger(stderr, format, f.logLevel)
	if f.listen, err = newListenConfig(f, cfg, logger); err != nil {
		logger.Error("wsgi: bad listener settings", "err", err)
		return exitFail
	}
	// TLS, HTTP/2, HTTP/3 and ACME keys (tls.go); their flags win.
	f.tls.fromConfig(cfg, f.set)
	if err := f.tls.check(); err != nil {
		logger.Error("wsgi: bad tls settings", "file", f.config, "err", err.Error())
		return exitFail
	}
	attrs := []any{
		"config", absDir(f.config),
		"apps", len(cfg.Apps),
	}
	if wk == nil && f.workers.Count() > 1 {
		logMounted(logger, cfg)
		var watch []string
		for _, a := range cfg.Apps {
			if a.Debug || a.Reload {
				watch = append(watch, a.Dir)
			}
		}
		return runMaster(ctx, logger, f, args, stderr, attrs, watch)
	}
	if wk != nil {
		logger = logger.With("worker", wk.id)
	} else {
		warnWorkerFlags(logger, f)
	}
	adm, err := openProcessAdmin(ctx, logger, f, wk)
	if err != nil {
		logger.Error("wsgi: cannot serve the admin endpoint", "err", err)
		return exitFail
	}
	defer adm.close()
	cfg.NoReload = wk != nil // its master restarts it instead

	sec, err := newSecure(&f.tls, logger, wk != nil) // tls.go
	if err != nil {
		logger.Error("wsgi: cannot serve tls", "err", err)
		return exitFail
	}
	srv, err := config.NewServer(cfg, logger, nil)
	if err != nil {
		logLoadError(logger, stderr, format == "json", err)
		return exitFail
	}
	if wk != nil {
		srv.SetWorker(wk.id)
	} else {
		logMounted(logger, cfg) // once the apps have imported
	}
	tune(sec != nil)
	adm.setHandlers(srv.Handlers()...)
	return serve(ctx, logger, wk.withLimits(f), sec, f.listen, f.shutdownTimeout, srv, srv.Close, attrs...)
}

// logMounted logs where each app of cfg is mounted.
func logMounted(logger *slog.Logger, cfg *config.Config) {
	for _, a := range cfg.Apps {
		prefix := a.Prefix
		if prefix == "" {
			prefix = "/"
		}
		callable := a.Callable
		if callable == "" {
			callable = "application"
		}
		logger.Info("wsgi: mounted",
			"app", a.Name, // as in the app's own records
			"prefix", prefix,
			"dir", a.Dir,
			"module", a.Module+":"+callable,
			"protocol", a.Protocol,
		)
	}
}

// newLogger logs to stderr in format ("text" or "json").
func newLogger(stderr io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(stderr, opts))
	}
	return slog.New(slog.NewTextHandler(stderr, opts))
}

// serve listens as lc says and serves h until ctx is done, then shuts
// down gracefully and closes the apps with closeApps. attrs describe the
// apps in the startup record. In a worker process (wk not nil) it serves
// the master's listening sockets instead, and tells the master once it
// serves. sec adds TLS, HTTP/2 and HTTP/3 (tls.go), if not nil. It
// returns the process exit code.
func serve(ctx context.Context, logger *slog.Logger, wk *workerConn, sec *secure, lc *listenConfig, grace time.Duration,
	h http.Handler, closeApps func() error, attrs ...any) int {
	var lns []net.Listener
	if wk != nil {
		lns = wk.listeners
		h = wk.countRequests(h, logger)
		var stop context.CancelFunc
		ctx, stop = wk.watchMaster(ctx, logger)
		defer stop()
	} else {
		// Listen only once the apps have imported, so that a broken app
		// never accepts (and fails) connections.
		var removeSockets func()
		var err error
		lns, removeSockets, err = lc.listen(logger)
		if err != nil {
			logger.Error("wsgi: cannot listen", "addr", strings.Join(lc.addrs, ","), "err", err)
			_ = closeApps()
			return exitFail
		}
		defer removeSockets()
	}
	listening := addrsAttrs(lns)
	lns = lc.wrap(lns)
	var drain *drainer // a worker closes its keep-alive connections between requests: drain.go
	if wk != nil {
		drain = newDrainer()
		h = drain.handler(h)
	}

	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		// No WriteTimeout: WSGI responses may stream for as long as the app likes.
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if drain != nil {
		srv.ConnState = drain.connState
	}
	if wk != nil && sec != nil {
		sec.quic = wk.quic
	}
	secAttrs, err := sec.setup(srv, lns)
	if err != nil {
		logger.Error("wsgi: cannot serve", "err", err)
		_ = closeApps()
		return exitFail
	}
	attrs = append(listening, attrs...)
	attrs = append(attrs, secAttrs...)
	attrs = append(attrs, "python", pythonRelease())
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { errc <- sec.serve(srv, ln) }()
	}
	if wk != nil {
		// The master logs "wsgi: serving" once every worker is ready.
		logger.Info("wsgi: worker ready", append(attrs, "pid", os.Getpid())...)
		wk.ready(logger)
		wk.watchRSS(ctx, logger)
	} else {
		logger.Info("wsgi: serving", attrs...)
	}

	select {
	case err := <-errc:
		// Serve only returns early on a broken listener.
		logger.Error("wsgi: serving failed", "err", err)
		_ = closeApps()
		return exitFail
	case <-ctx.Done():
	}

	logger.Info("wsgi: shutting down; finishing requests in flight", "grace", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if drain != nil {
		drain.drain(sctx, lns)
	}
	if err := sec.shutdown(sctx, srv); shutdownFailed(err) {
		// Python code cannot be interrupted, so do not wait for
		// closeApps: the requests still running die with the process.
		logger.Error("wsgi: grace period over; dropping requests in flight", "err", err)
		_ = srv.Close()
		return exitFail
	}
	// Requests past their RequestTimeout may still run Python: closing
	// waits for them, within the grace period.
	closed := make(chan error, 1)
	go func() { closed <- closeApps() }()
	select {
	case err := <-closed:
		if err != nil {
			logger.Error("wsgi: closing the app", "err", err)
			return exitFail
		}
	case <-sctx.Done():
		logger.Error("wsgi: grace period over; Python is still running requests that timed out")
		return exitFail
	}
	if finalizeOnExit {
		if err := wsgi.Finalize(sctx); err != nil {
			logger.Error("wsgi: finalizing Python", "err", err)
			return exitFail
		}
	}
	logger.Info("wsgi: stopped")
	return exitOK
}

// finalizeOnExit makes a clean shutdown finalize the interpreter (atexit
// handlers run). Only main sets it: run is also called by tests, in a
// process whose interpreter must stay up.
var finalizeOnExit bool

// logConfigError reports a config file that Load refused: one problem a
// line, each "FILE:LINE: ...", as a compiler does (in JSON, one record a
// problem).
func logConfigError(logger *slog.Logger, stderr io.Writer, json bool, file string, err error) {
	problems := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		problems = j.Unwrap()
	}
	if json {
		for _, p := range problems {
			logger.Error("wsgi: bad config", "file", file, "err", p.Error())
		}
		return
	}
	logger.Error("wsgi: bad config; problems follow", "file", file, "problems", len(problems))
	for _, p := range problems {
		_, _ = io.WriteString(stderr, p.Error()+"\n")
	}
}

// logLoadError reports an app that could not be loaded, with its Python
// traceback if there is one.
func logLoadError(logger *slog.Logger, stderr io.Writer, json bool, err error) {
	var pe *wsgi.PythonError
	if !errors.As(err, &pe) || pe.Traceback == "" {
		logger.Error("wsgi: cannot load the app", "err", err)
		return
	}
	if json {
		logger.Error("wsgi: cannot load the app", "err", err, "traceback", fmt.Sprintf("%+v", pe))
		return
	}
	// A text record would quote the traceback onto one line; print it
	// as Python does instead, right after the record.
	logger.Error("wsgi: cannot load the app; python traceback follows", "err", err)
	tb := fmt.Sprintf("%+v", pe)
	if !strings.HasSuffix(tb, "\n") {
		tb += "\n"
	}
	_, _ = io.WriteString(stderr, tb)
}

// absDir makes dir absolute for the log; wsgi.New has checked it exists.
func absDir(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

// pythonRelease is the linked Python's version without the build details
// that sys.version appends ("3.11.7 (main, ...) [GCC ...]").
func pythonRelease() string {
	v, _, _ := strings.Cut(wsgi.PythonVersion(), " ")
	return v
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// shutdownFailed reports whether http.Server.Shutdown's err means the
// grace period ended with requests in flight. A drain closed the
// listeners already, so Shutdown may find one closed (when Serve has not
// returned yet) and say so: that is no failure.
func shutdownFailed(err error) bool {
	return err != nil && !errors.Is(err, os.ErrClosed) && !errors.Is(err, net.ErrClosed)
}

// tune sets the Go runtime for the apps served, where measurements say
// so, unless GOGC is set: gcPercent.
func tune(http2 bool) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent(http2))
	}
}

// gcPercent is the command's GC percent. The Go heap holds little more
// than request buffers (the apps' objects live in Python's heap), so it
// is near Go's 4 MiB minimum goal, which GOGC scales.
//
// Over HTTP/1.x, 50 (pinned to one core, wrk -c16, paired runs): a
// smaller heap goal costs no measurable req/s or p99 and saves ~2 MiB of
// peak RSS (hello: 26-28 -> 25-26 MiB). ASGI apps once needed a second P
// and GC percent 100 for their loop thread's calls into Go; the loop has
// no thread now (RATIONALE.md), and on one CPU a second P only spins.
//
// Serving HTTP/2 (TLS or h2c), 200: net/http's HTTP/2 server allocates
// about 3.5 KiB a request, so at 100 a collection came every ~490
// requests (a 2 MiB live heap, a 4 MiB goal), each costing ~1.45 ms of
// CPU. For make bench-h2's hello (GODEBUG=gctrace=1, h2load -c16 -m8),
// GC CPU per request: 2.9-3.0 µs at 100, 1.0-1.1 µs at 200 (a
// collection every ~1,500 requests), for 3.5 MiB more peak RSS (35.9 ->
// 39.4 MiB); an earlier build took 8.3 µs at 50 against 4.3 at 100. 400
// took 0.5 µs more off for 12 MiB more RSS. Go's own server
// (bench/protocols' reference) goes from 1.3 to 0.5 µs at 200: ours had
// more to gain, a larger live heap for the same goal.
func gcPercent(http2 bool) int {
	if http2 {
		return 200
	}
	return 50
}
