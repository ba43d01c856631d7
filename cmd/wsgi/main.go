// Command wsgi serves a Python WSGI app over HTTP from an embedded CPython.
//
//	wsgi -addr 127.0.0.1:8080 -dir DIR -app module:callable [-prefix /mnt] [-threads N] [-debug]
//
// SIGTERM or SIGINT stops it gracefully: it stops accepting connections,
// lets requests in flight finish (up to -shutdown-timeout) and exits 0.
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
	"strings"
	"syscall"
	"time"

	"github.com/gowsgi/wsgi"
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
	addr            string
	dir             string
	app             string
	module          string
	callable        string
	prefix          string
	threads         int
	queueTimeout    time.Duration
	maxBody         int64
	debug           bool
	logFormat       string
	logLevel        slog.Level
	shutdownTimeout time.Duration
	version         bool
}

// parseFlags parses args. It returns a non-nil error after printing the
// problem and the usage; flag.ErrHelp for -h.
func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	var f flags
	fs := flag.NewFlagSet("wsgi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: wsgi [-addr host:port] [-dir DIR] -app module[:callable] [flags]\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "`host:port` to listen on (port 0 picks a free port; the startup log shows it)")
	fs.StringVar(&f.dir, "dir", ".", "app `directory`, put first on sys.path")
	fs.StringVar(&f.app, "app", "", "the WSGI app as `module:callable` (callable defaults to application)")
	fs.StringVar(&f.module, "module", "", "module holding the app, instead of -app")
	fs.StringVar(&f.callable, "callable", "", "name of the WSGI callable in -module (default application)")
	fs.StringVar(&f.prefix, "prefix", "", "URL `path` the app is mounted at; it becomes SCRIPT_NAME and other paths get 404")
	fs.IntVar(&f.threads, "threads", 0, "requests that may run Python at once (0 means the library default, 8)")
	fs.DurationVar(&f.queueTimeout, "queue-timeout", 0, "how long a request waits for a thread before a 503 (0 means the library default, 30s)")
	fs.Int64Var(&f.maxBody, "max-body", 0, "largest request body in `bytes` (0 means no limit)")
	fs.BoolVar(&f.debug, "debug", false, "put Python tracebacks in 500 responses (never where strangers can reach the app)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.TextVar(&f.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long requests in flight may take to finish after SIGTERM or SIGINT")
	fs.BoolVar(&f.version, "version", false, "print the Python version and executable, then exit")

	if err := fs.Parse(args); err != nil {
		return nil, err // the flag package has printed the problem and usage
	}
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
	case f.app != "" && (f.module != "" || f.callable != ""):
		return nil, usageErr("-app may not be combined with -module or -callable")
	case f.app == "" && f.module == "":
		return nil, usageErr("no app: set -app or -module")
	case f.logFormat != "text" && f.logFormat != "json":
		return nil, usageErr("-log-format must be text or json, not %q", f.logFormat)
	case f.threads < 0:
		return nil, usageErr("-threads must not be negative")
	case f.queueTimeout < 0:
		return nil, usageErr("-queue-timeout must not be negative")
	case f.maxBody < 0:
		return nil, usageErr("-max-body must not be negative")
	case f.shutdownTimeout < 0:
		return nil, usageErr("-shutdown-timeout must not be negative")
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

	opts := &slog.HandlerOptions{Level: f.logLevel}
	var logger *slog.Logger
	if f.logFormat == "json" {
		logger = slog.New(slog.NewJSONHandler(stderr, opts))
	} else {
		logger = slog.New(slog.NewTextHandler(stderr, opts))
	}

	h, err := wsgi.New(wsgi.Options{
		Dir:          f.dir,
		App:          f.app,
		Module:       f.module,
		Callable:     f.callable,
		Prefix:       f.prefix,
		Threads:      f.threads,
		QueueTimeout: f.queueTimeout,
		MaxBodyBytes: f.maxBody,
		Debug:        f.debug,
		Logger:       logger,
	})
	if err != nil {
		logLoadError(logger, stderr, f.logFormat == "json", err)
		return exitFail
	}

	// Listen only once the app has imported, so that a broken app never
	// accepts (and fails) connections.
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		logger.Error("wsgi: cannot listen", "addr", f.addr, "err", err)
		_ = h.Close()
		return exitFail
	}

	srv := &http.Server{
		Handler:           h, // the handler answers 404 outside -prefix itself
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		// No WriteTimeout: WSGI responses may stream for as long as the app likes.
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	app := f.app
	if app == "" {
		app = f.module
		if f.callable != "" {
			app += ":" + f.callable
		}
	}
	logger.Info("wsgi: serving",
		"addr", ln.Addr().String(),
		"app", app,
		"dir", absDir(f.dir),
		"prefix", f.prefix,
		"python", pythonRelease(),
	)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		// Serve only returns early on a broken listener.
		logger.Error("wsgi: serving failed", "err", err)
		_ = h.Close()
		return exitFail
	case <-ctx.Done():
	}

	logger.Info("wsgi: shutting down; finishing requests in flight", "grace", f.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Python code cannot be interrupted, so do not wait for
		// h.Close: the requests still running die with the process.
		logger.Error("wsgi: grace period over; dropping requests in flight", "err", err)
		_ = srv.Close()
		return exitFail
	}
	if err := h.Close(); err != nil {
		logger.Error("wsgi: closing the app", "err", err)
		return exitFail
	}
	logger.Info("wsgi: stopped")
	return exitOK
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
