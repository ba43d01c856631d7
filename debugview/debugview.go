// Package debugview serves the live view of wsgi Handlers (see
// wsgi.Handler.Snapshot) to people and programs: an HTML page that
// refreshes itself, and the same as JSON.
//
//	mux.Handle("/debug/wsgi/", debugview.New(debugview.Local(0, h)))
//
// serves the page at /debug/wsgi/ and the JSON at /debug/wsgi/json. The
// page lists, for each app, each request in progress (method, path,
// client, elapsed time, state) with the Python stack serving it. Paths and
// stacks come from clients and apps: the page escapes all of them, and is
// served with a Content-Security-Policy that allows no script. The view
// shows what requests are doing, and the client's address: serve it only
// where operators alone can reach it.
package debugview

import (
	"context"
	"encoding/json"
	"html/template"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gowsgi/wsgi"
)

// Page is the live view of one or more processes, as the JSON has it.
type Page struct {
	Taken     time.Time `json:"taken"`
	Processes []Process `json:"processes"`
}

// Process is the live view of one process (a worker of the wsgi command,
// or a process without workers).
type Process struct {
	// Worker is the worker id of the wsgi command's -workers, from 1; 0
	// outside workers.
	Worker int    `json:"worker,omitempty"`
	PID    int    `json:"pid"`
	Apps   []App  `json:"apps"`
	Error  string `json:"error,omitempty"` // why the process could not be read (its master's view)
}

// App is one Handler's requests in progress.
type App struct {
	Name     string    `json:"app"`
	Protocol string    `json:"protocol"`
	Threads  int       `json:"threads"`
	Busy     int       `json:"busy"`
	Requests []Request `json:"requests"`
	// StackError says why the Python stacks are missing, if they are.
	StackError string `json:"stack_error,omitempty"`
}

// Request is one request in progress.
type Request struct {
	Method         string    `json:"method"`
	Path           string    `json:"path"`
	Client         string    `json:"client"`
	Started        time.Time `json:"started"`
	ElapsedSeconds float64   `json:"elapsed_seconds"`
	State          string    `json:"state"`
	Thread         uint64    `json:"thread,omitempty"` // the Python thread (WSGI)
	Stack          []Frame   `json:"stack"`            // outermost first
}

// Frame is one frame of a Python stack.
type Frame struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Function string `json:"function"`
	Code     string `json:"code,omitempty"`
}

// A Source reads the live view when the page or the JSON is asked for.
type Source func(ctx context.Context) Page

// Local is the Source of this process's handlers; worker is the wsgi
// command's worker id (0 outside workers).
func Local(worker int, handlers ...*wsgi.Handler) Source {
	return func(context.Context) Page {
		return Page{Taken: time.Now(), Processes: []Process{Collect(worker, handlers...)}}
	}
}

// Collect takes a snapshot of each handler.
func Collect(worker int, handlers ...*wsgi.Handler) Process {
	p := Process{Worker: worker, PID: os.Getpid(), Apps: []App{}}
	for _, h := range handlers {
		s := h.Snapshot()
		a := App{Name: s.App, Protocol: s.Protocol, Threads: s.Threads, Busy: s.Busy,
			StackError: s.StackError, Requests: make([]Request, 0, len(s.Requests))}
		for _, r := range s.Requests {
			q := Request{
				Method: r.Method, Path: r.Path, Client: r.Client, Started: r.Started,
				ElapsedSeconds: r.Elapsed.Seconds(), State: string(r.State), Thread: r.Thread,
				Stack: make([]Frame, 0, len(r.Stack)),
			}
			for _, f := range r.Stack {
				q.Stack = append(q.Stack, Frame{File: f.File, Line: f.Line, Function: f.Function, Code: f.Code})
			}
			a.Requests = append(a.Requests, q)
		}
		p.Apps = append(p.Apps, a)
	}
	return p
}

// Refresh is how often the HTML page reloads itself.
const Refresh = 2 * time.Second

// New serves src: JSON for a path ending in "/json", the HTML page
// otherwise.
func New(src Source) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		page := src(r.Context())
		hdr := w.Header()
		hdr.Set("Cache-Control", "no-store")
		hdr.Set("X-Content-Type-Options", "nosniff")
		if strings.HasSuffix(r.URL.Path, "/json") {
			hdr.Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			_ = enc.Encode(page)
			return
		}
		hdr.Set("Content-Type", "text/html; charset=utf-8")
		hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		hdr.Set("X-Frame-Options", "DENY")
		_ = pageTemplate.Execute(w, view{Page: page, Refresh: int(Refresh.Seconds())})
	})
}

// view is what the template renders.
type view struct {
	Page
	Refresh int
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"seconds": func(s float64) string {
		return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
	},
	"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"count": func(ps []Process) (n int) {
		for _, p := range ps {
			for _, a := range p.Apps {
				n += len(a.Requests)
			}
		}
		return n
	},
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{{.Refresh}}">
<title>wsgi: requests in progress</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.5em; } h3 { font-size: 1em; }
table { border-collapse: collapse; width: 100%; margin-bottom: 1em; }
th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #ddd; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.state { font-weight: 600; } .past-timeout { color: #b00020; } .queued { color: #8a6d00; }
pre { margin: .3em 0 0; font-size: .85em; background: #f8f8f8; padding: .4em; overflow-x: auto; }
.muted { color: #666; } .error { color: #b00020; }
</style>
</head>
<body>
<h1>Requests in progress</h1>
<p class="muted">{{count .Processes}} in progress at {{stamp .Taken}}; this page reloads every {{.Refresh}} s.</p>
{{- range .Processes}}
<h2>{{if .Worker}}Worker {{.Worker}}{{else}}Process{{end}} <span class="muted">(pid {{.PID}})</span></h2>
{{- if .Error}}<p class="error">Not read: {{.Error}}</p>{{end}}
{{- range .Apps}}
<h3>App {{.Name}} <span class="muted">({{.Protocol}}, {{.Busy}} of {{.Threads}} threads busy)</span></h3>
{{- if .StackError}}<p class="error">Python stacks not read: {{.StackError}}</p>{{end}}
{{- if .Requests}}
<table>
<tr><th>method</th><th>path</th><th>client</th><th>elapsed</th><th>state</th><th>Python stack (innermost last)</th></tr>
{{- range .Requests}}
<tr class="request">
<td>{{.Method}}</td><td class="path">{{.Path}}</td><td>{{.Client}}</td><td class="num">{{seconds .ElapsedSeconds}}</td>
<td class="state {{if eq .State "past timeout"}}past-timeout{{else if eq .State "queued"}}queued{{end}}">{{.State}}</td>
<td>{{if .Stack}}<pre class="stack">
{{- range .Stack}}{{.File}}:{{.Line}} in {{.Function}}{{if .Code}}
    {{.Code}}{{end}}
{{end}}</pre>{{else}}<span class="muted">no Python running</span>{{end}}</td>
</tr>
{{- end}}
</table>
{{- else}}
<p class="muted none">No request in progress.</p>
{{- end}}
{{- end}}
{{- end}}
</body>
</html>
`))
