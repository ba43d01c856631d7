package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/gowsgi/wsgi"
)

// Server serves the apps of a Config, each at its prefix, from one
// http.ServeMux. When no app is at the root, "/" lists the apps (HTML, or
// JSON for Accept: application/json); other unmatched paths get 404.
type Server struct {
	mux     *http.ServeMux
	started time.Time

	mu       sync.Mutex
	worker   int             // the wsgi command's worker id; 0 outside workers
	apps     []App           // as configured, in order
	handlers []*wsgi.Handler // one per app, in order
	closed   bool
}

// newHandler builds an app's handler; tests replace it.
var newHandler = wsgi.New

// NewServer checks cfg (see Config.Validate), imports every app and mounts
// each at its prefix. logger receives every app's records (nil means
// slog.Default()). extra are Go functions every app may call besides the
// built-in ones (see the package documentation); nil means none. If an app
// fails to load, the apps already loaded are closed and the error names
// the app; it wraps the app's *wsgi.PythonError, if any.
func NewServer(cfg *Config, logger *slog.Logger, extra map[string]wsgi.Func) (*Server, error) {
	if cfg == nil {
		return nil, errors.New("wsgi: nil Config")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{mux: http.NewServeMux(), started: time.Now()}
	root := false
	for _, a := range cfg.Apps {
		prefix, _ := cleanPrefix(a.Prefix) // Validate checked it
		a.Prefix = prefix
		if a.Protocol == "" {
			a.Protocol = "wsgi"
		}
		h, err := newHandler(s.options(cfg, a, logger, extra))
		if err != nil {
			_ = s.Close()
			return nil, &appError{name: a.Name, err: err}
		}
		s.mu.Lock()
		s.apps = append(s.apps, a)
		s.handlers = append(s.handlers, h)
		s.mu.Unlock()
		if prefix == "" {
			root = true
			s.mux.Handle("/", h)
			continue
		}
		s.mux.Handle(prefix+"/", h)
		s.mux.Handle(prefix, h)
	}
	if !root {
		s.mux.HandleFunc("GET /{$}", s.serveIndex)
	}
	return s, nil
}

// SetWorker records that this Server runs in worker process id (from 1)
// of the wsgi command: the listing at "/" and gohost.host() then show it,
// as requests to one address land on any worker. If never called, they
// show none.
func (s *Server) SetWorker(id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.worker = id
}

func (s *Server) workerID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.worker
}

// options maps an App to the handler's Options.
func (s *Server) options(cfg *Config, a App, logger *slog.Logger, extra map[string]wsgi.Func) wsgi.Options {
	opts := wsgi.Options{
		Name:         a.Name,
		Dir:          a.Dir,
		Module:       a.Module,
		Callable:     a.Callable,
		Protocol:     a.Protocol,
		Prefix:       a.Prefix,
		Threads:      a.Threads,
		Interpreters: a.Interpreters,
		Env:          a.Env,
		Logger:       logger,
		Debug:        a.Debug,
		Reload:       (a.Debug || a.Reload) && !cfg.NoReload,
		Static:       a.Static == "always",
		LogFile:      a.LogFile,
		AccessLog:    cfg.AccessLog,
		Functions:    s.functions(extra),

		MaxBodyBytes:         a.MaxBody,
		WebSocketCompression: a.WebSocketCompression,
		TrustedProxies:       a.TrustedProxies,
		PythonPath:           a.PythonPath,
		Virtualenv:           a.Virtualenv,
	}
	// Validate checked the durations.
	opts.QueueTimeout, _ = parseDuration(a.QueueTimeout)
	opts.RequestTimeout, _ = parseDuration(a.RequestTimeout)
	opts.BodyReadTimeout, _ = parseDuration(a.BodyTimeout)
	if a.Auth != nil {
		opts.BasicAuth = &wsgi.BasicAuth{
			HtpasswdFile:      a.Auth.Htpasswd,
			Realm:             a.Auth.Realm,
			PassAuthorization: a.Auth.PassAuthorization,
		}
	}
	return opts
}

// functions is the built-in functions plus extra, for one app.
func (s *Server) functions(extra map[string]wsgi.Func) map[string]wsgi.Func {
	fns := map[string]wsgi.Func{
		"ping": ping,
		"host": s.host,
	}
	for name, f := range extra {
		fns[name] = f
	}
	return fns
}

// ping is the built-in gohost.ping(): "pong".
func ping(context.Context, []any) (any, error) { return "pong", nil }

// host is the built-in gohost.host(): the Go side's state.
func (s *Server) host(context.Context, []any) (any, error) {
	var apps []any
	for _, st := range s.status() {
		apps = append(apps, map[string]any{
			"name":     st.Name,
			"prefix":   st.Prefix,
			"requests": st.Requests,
		})
	}
	host := map[string]any{
		"go_version":     runtime.Version(),
		"uptime_seconds": time.Since(s.started).Seconds(),
		"apps":           apps,
	}
	if id := s.workerID(); id != 0 {
		host["worker"] = id
	}
	return host, nil
}

// appStatus is one app in the listing.
type appStatus struct {
	Name     string `json:"name"`
	Prefix   string `json:"prefix"` // "/" for the root
	Protocol string `json:"protocol"`
	Requests int64  `json:"requests"`
}

// status lists the apps loaded so far.
func (s *Server) status() []appStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]appStatus, len(s.apps))
	for i, a := range s.apps {
		prefix := a.Prefix
		if prefix == "" {
			prefix = "/"
		}
		list[i] = appStatus{
			Name:     a.Name,
			Prefix:   prefix,
			Protocol: a.Protocol,
			Requests: int64(s.handlers[i].Requests()),
		}
	}
	return list
}

var indexPage = template.Must(template.New("index").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Apps</title></head>
<body>
<h1>Apps</h1>
{{- if .Worker}}
<p>Answered by worker {{.Worker}}.</p>
{{- end}}
<table>
<tr><th>name</th><th>prefix</th><th>protocol</th><th>requests</th></tr>
{{- range .Apps}}
<tr><td>{{.Name}}</td><td><a href="{{.Prefix}}/">{{.Prefix}}</a></td><td>{{.Protocol}}</td><td>{{.Requests}}</td></tr>
{{- end}}
</table>
</body>
</html>
`))

// serveIndex lists the apps at "/" when no app is mounted there.
func (s *Server) serveIndex(w http.ResponseWriter, r *http.Request) {
	page := struct {
		Apps   []appStatus `json:"apps"`
		Worker int         `json:"worker,omitempty"` // the worker id, with the command's -workers
	}{s.status(), s.workerID()}
	w.Header().Set("Vary", "Accept")
	w.Header().Set("Cache-Control", "no-store")
	if wantsJSON(r.Header.Get("Accept")) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(page)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = indexPage.Execute(w, page)
}

// wantsJSON reports whether an Accept header asks for JSON rather than
// HTML.
func wantsJSON(accept string) bool {
	return strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
}

// ServeHTTP routes a request to the app mounted at its path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Handlers returns the apps' handlers, in the Config's order.
func (s *Server) Handlers() []*wsgi.Handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*wsgi.Handler(nil), s.handlers...)
}

// Close closes every app's handler (see wsgi.Handler.Close): new requests
// get 503, requests in flight finish. Close is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	handlers := append([]*wsgi.Handler(nil), s.handlers...)
	s.mu.Unlock()
	var errs []error
	for i := len(handlers) - 1; i >= 0; i-- {
		if err := handlers[i].Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// appError is an app that failed to load.
type appError struct {
	name string
	err  error
}

func (e *appError) Error() string {
	return fmt.Sprintf("wsgi: app %q: %s", e.name, strings.TrimPrefix(e.err.Error(), "wsgi: "))
}

func (e *appError) Unwrap() error { return e.err }
