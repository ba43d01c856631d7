package metrics_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/gowsgi/wsgi"
	"github.com/gowsgi/wsgi/metrics"
)

// newHandler builds a Handler on the root package's test apps, its logs
// dropped, closed when the test ends.
func newHandler(t *testing.T, opts wsgi.Options) *wsgi.Handler {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = "../testdata"
	}
	opts.Logger = slog.New(slog.DiscardHandler)
	h, err := wsgi.New(opts)
	require.NoError(t, err, "%+v", err)
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// do runs one request through h in process and returns its status.
func do(h http.Handler, method, target, body string) int {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, strings.NewReader(body)))
	return rec.Code
}

// values gathers c through a pedantic registry (which checks what it
// collects against what it describes) into "name{labels}" -> value, with
// histograms as name_count and name_sum.
func values(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName() + labels(m)
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[mf.GetName()+"_count"+labels(m)] = float64(m.GetHistogram().GetSampleCount())
				out[mf.GetName()+"_sum"+labels(m)] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

func labels(m *dto.Metric) string {
	var l []string
	for _, p := range m.GetLabel() {
		l = append(l, fmt.Sprintf("%s=%q", p.GetName(), p.GetValue()))
	}
	sort.Strings(l)
	return "{" + strings.Join(l, ",") + "}"
}

// check compares the metrics named in want (a missing one reads as -1).
func check(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	for _, k := range sortedKeys(want) {
		v, ok := got[k]
		if !ok {
			v = -1
		}
		assert.Equal(t, want[k], v, k)
	}
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

// TestWSGILimits: requests by method and code, body bytes, and the 413,
// 504 and 503 answers of a WSGI app.
func TestWSGILimits(t *testing.T) {
	h := newHandler(t, wsgi.Options{App: "behave", Name: "limits", Threads: 1,
		QueueTimeout: 50 * time.Millisecond, RequestTimeout: 300 * time.Millisecond, MaxBodyBytes: 100})
	c := metrics.NewCollector(h)

	steps := []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/tuple", "", 200},                      // 5 bytes out
		{"POST", "/echo", "hello", 200},                 // 5 in, 5 out
		{"HEAD", "/tuple", "", 200},                     // no body out
		{"BREW", "/tuple", "", 200},                     // method "other"
		{"PUT", "/echo", strings.Repeat("x", 101), 413}, // declared over MaxBodyBytes
		{"GET", "/sleep?1.0", "", 504},                  // Python sleeps on, holding the only thread
		{"GET", "/tuple", "", 503},                      // no thread within QueueTimeout
	}
	for _, s := range steps {
		assert.Equal(t, s.status, do(h, s.method, s.path, s.body), s.method+" "+s.path)
	}
	got := values(t, c)
	check(t, got, map[string]float64{
		`wsgi_requests_timed_out_running{app="limits"}`: 1,
		`wsgi_threads_busy{app="limits"}`:               1,
		`wsgi_threads{app="limits"}`:                    1,
	})
	require.True(t, waitFor(5*time.Second, func() bool { return h.Metrics().Busy == 0 }), "the sleep ends")

	got = values(t, c)
	check(t, got, map[string]float64{
		`wsgi_requests_total{app="limits",code="200",method="GET"}`:   1,
		`wsgi_requests_total{app="limits",code="200",method="POST"}`:  1,
		`wsgi_requests_total{app="limits",code="200",method="HEAD"}`:  1,
		`wsgi_requests_total{app="limits",code="200",method="other"}`: 1,
		`wsgi_requests_total{app="limits",code="413",method="PUT"}`:   1,
		`wsgi_requests_total{app="limits",code="504",method="GET"}`:   1,
		`wsgi_requests_total{app="limits",code="503",method="GET"}`:   1,
		`wsgi_request_body_too_large_total{app="limits"}`:             1,
		`wsgi_request_timeouts_total{app="limits"}`:                   1,
		`wsgi_queue_rejected_total{app="limits"}`:                     1,
		`wsgi_requests_timed_out_running{app="limits"}`:               0,
		`wsgi_threads_busy{app="limits"}`:                             0,
		`wsgi_requests_in_flight{app="limits"}`:                       0,
		`wsgi_request_body_bytes_total{app="limits"}`:                 5,
		`wsgi_response_body_bytes_total{app="limits"}`:                15,
		`wsgi_request_duration_seconds_count{app="limits"}`:           7,
		`wsgi_queue_wait_seconds_count{app="limits"}`:                 6, // all but the 413
		`wsgi_gil_wait_seconds_count{app="limits"}`:                   5, // the requests that ran the app
		`wsgi_app_exceptions_total{app="limits"}`:                     0,
	})
	assert.GreaterOrEqual(t, got[`wsgi_request_duration_seconds_sum{app="limits"}`], 0.3, "the 504 took RequestTimeout")
	assert.GreaterOrEqual(t, got[`wsgi_queue_wait_seconds_sum{app="limits"}`], 0.05, "the 503 waited QueueTimeout")
	assert.Equal(t, 7, testutil.CollectAndCount(c, "wsgi_requests_total"), "one series per method and code seen")
	assert.Positive(t, testutil.CollectAndCount(c, "wsgi_python_gc_collections_total"), "a series per generation")
}

// TestBodyTimeout: a stalled upload is a 408.
func TestBodyTimeout(t *testing.T) {
	for _, app := range []struct{ name, app, protocol string }{{"wsgi", "behave", "wsgi"}, {"asgi", "asgi_raw:app", "asgi"}} {
		t.Run(app.name, func(t *testing.T) {
			h := newHandler(t, wsgi.Options{App: app.app, Protocol: app.protocol, Name: app.name, BodyReadTimeout: 200 * time.Millisecond})
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			require.NoError(t, err)
			defer conn.Close()
			_, err = fmt.Fprintf(conn, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
			require.NoError(t, err)
			require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			require.NoError(t, err)
			_ = resp.Body.Close()
			require.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
			require.True(t, waitFor(2*time.Second, func() bool { return h.Metrics().InFlight == 0 }))
			check(t, values(t, metrics.NewCollector(h)), map[string]float64{
				`wsgi_request_body_timeouts_total{app="` + app.name + `"}`:             1,
				`wsgi_requests_total{app="` + app.name + `",code="408",method="POST"}`: 1,
				`wsgi_request_body_bytes_total{app="` + app.name + `"}`:                10,
				`wsgi_request_duration_seconds_count{app="` + app.name + `"}`:          1,
				`wsgi_asgi_tasks{app="` + app.name + `"}`:                              0,
				`wsgi_requests_total{app="` + app.name + `",code="200",method="POST"}`: -1, // none
			})
		})
	}
}

// TestExceptions: the app's exceptions, WSGI and ASGI, counted where they
// are logged.
func TestExceptions(t *testing.T) {
	wsgiApp := newHandler(t, wsgi.Options{App: "failing", Name: "failing"})
	asgiApp := newHandler(t, wsgi.Options{App: "asgi_raw:app", Protocol: "asgi", Name: "asgi"})
	tests := []struct {
		h          *wsgi.Handler
		path       string
		status     int
		exceptions float64 // the handler's count after the request
	}{
		{wsgiApp, "/raise-before", 500, 1},
		{wsgiApp, "/close-raises", 200, 2},
		{wsgiApp, "/twice", 200, 2}, // the app catches its RuntimeError
		{asgiApp, "/raise", 500, 1},
		{asgiApp, "/raise-after-complete", 500, 2},
	}
	for _, tt := range tests {
		t.Run(tt.h.Name()+tt.path, func(t *testing.T) {
			assert.Equal(t, tt.status, do(tt.h, "GET", tt.path, ""))
			name := `wsgi_app_exceptions_total{app="` + tt.h.Name() + `"}`
			ok := waitFor(2*time.Second, func() bool { return values(t, metrics.NewCollector(tt.h))[name] == tt.exceptions })
			assert.True(t, ok, "%s: %v", name, values(t, metrics.NewCollector(tt.h))[name])
		})
	}
	require.True(t, waitFor(2*time.Second, func() bool { return asgiApp.Metrics().ASGITasks == 0 }), "the tasks ended")
	got := values(t, metrics.NewCollector(wsgiApp, asgiApp))
	check(t, got, map[string]float64{
		`wsgi_requests_total{app="failing",code="500",method="GET"}`: 1,
		`wsgi_requests_total{app="failing",code="200",method="GET"}`: 2,
		`wsgi_requests_total{app="asgi",code="500",method="GET"}`:    2,
		`wsgi_response_body_bytes_total{app="asgi"}`:                 float64(len("handled, then raised")), // not our own 500's
		`wsgi_asgi_tasks{app="asgi"}`:                                0,
		`wsgi_websockets_open{app="asgi"}`:                           0,
	})
}

// TestReloads: a reload that fails and one that works.
func TestReloads(t *testing.T) {
	dir := t.TempDir()
	app := func(src string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "app.py"), []byte(src), 0o644))
	}
	app("def application(environ, start_response):\n    start_response('200 OK', [])\n    return [b'v1']\n")
	h := newHandler(t, wsgi.Options{Dir: dir, App: "app", Name: "reloading", Reload: true})
	c := metrics.NewCollector(h)

	app("def application(:\n")
	require.True(t, waitFor(5*time.Second, func() bool { return h.Metrics().ReloadFailures == 1 }), "the broken app is loaded")
	assert.Equal(t, 500, do(h, "GET", "/", ""))
	app("def application(environ, start_response):\n    start_response('200 OK', [])\n    return [b'v2']\n")
	require.True(t, waitFor(5*time.Second, func() bool { return do(h, "GET", "/", "") == 200 }), "the fixed app is loaded")
	check(t, values(t, c), map[string]float64{
		`wsgi_reloads_total{app="reloading"}`:         2,
		`wsgi_reload_failures_total{app="reloading"}`: 1,
	})
}

// TestPromtool checks the exposition promhttp serves for the collector
// with promtool (Debian's prometheus package).
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found: install Debian's prometheus package (make deps) to check the exposition format")
	}
	h := newHandler(t, wsgi.Options{App: "behave", Name: "lint"})
	for _, path := range []string{"/tuple", "/echo", "/nothing"} {
		do(h, "POST", path, "abc")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(h))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	require.Contains(t, string(body), `wsgi_requests_total{app="lint",code="200",method="POST"}`)

	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	assert.NoError(t, err, "promtool check metrics:\n%s", out)
	assert.Empty(t, strings.TrimSpace(string(out)), "promtool's findings")
}

// TestWebSockets: open WebSockets, their handshakes' codes and an app's
// exception on one.
func TestWebSockets(t *testing.T) {
	h := newHandler(t, wsgi.Options{App: "asgi_raw:ws_app", Protocol: "asgi", Name: "ws"})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := metrics.NewCollector(h)
	open := func() float64 { return values(t, c)[`wsgi_websockets_open{app="ws"}`] }

	conn, _, err := websocket.Dial(ctx, url+"/echo", nil)
	require.NoError(t, err)
	assert.True(t, waitFor(2*time.Second, func() bool { return open() == 1 }), "one open")
	require.NoError(t, conn.Close(websocket.StatusNormalClosure, ""))
	assert.True(t, waitFor(2*time.Second, func() bool { return open() == 0 }), "none open")

	conn, _, err = websocket.Dial(ctx, url+"/raise", nil)
	require.NoError(t, err)
	_, _, err = conn.Read(ctx)
	assert.Equal(t, websocket.StatusInternalError, websocket.CloseStatus(err))
	_, _, err = websocket.Dial(ctx, url+"/refuse", nil)
	assert.Error(t, err)

	require.True(t, waitFor(2*time.Second, func() bool { return h.Metrics().InFlight == 0 }))
	check(t, values(t, c), map[string]float64{
		`wsgi_requests_total{app="ws",code="101",method="GET"}`: 2,
		`wsgi_requests_total{app="ws",code="403",method="GET"}`: 1,
		`wsgi_app_exceptions_total{app="ws"}`:                   1,
		`wsgi_websockets_open{app="ws"}`:                        0,
	})
}

// TestASGITimeout: an ASGI request past RequestTimeout is a 504 and its
// task is cancelled.
func TestASGITimeout(t *testing.T) {
	h := newHandler(t, wsgi.Options{App: "asgi_raw:app", Protocol: "asgi", Name: "slow", RequestTimeout: 200 * time.Millisecond})
	assert.Equal(t, http.StatusGatewayTimeout, do(h, "GET", "/slow", ""))
	require.True(t, waitFor(2*time.Second, func() bool { return h.Metrics().ASGITasks == 0 }), "the task is gone")
	got := values(t, metrics.NewCollector(h))
	check(t, got, map[string]float64{
		`wsgi_requests_total{app="slow",code="504",method="GET"}`: 1,
		`wsgi_request_timeouts_total{app="slow"}`:                 1,
		`wsgi_threads_busy{app="slow"}`:                           0,
		`wsgi_app_exceptions_total{app="slow"}`:                   0,
	})
	var tracked float64
	for k, v := range got {
		if strings.HasPrefix(k, "wsgi_python_gc_objects_tracked{") {
			tracked += v
		}
	}
	assert.Positive(t, tracked, "the interpreter's objects, per generation")
}

// TestWorkAfterResponseTimeout: work that runs on after its response
// (a WSGI body's close(), an ASGI task) past RequestTimeout is a timeout,
// and the exception it gets is not the app's.
func TestWorkAfterResponseTimeout(t *testing.T) {
	tests := []struct {
		name, app, protocol, path string
	}{
		{"wsgi-close", "post_response", "wsgi", "/spin?d=10&tag=spin"},
		{"asgi-task", "asgi_raw:app", "asgi", "/background?d=30&tag=forever"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHandler(t, wsgi.Options{App: tt.app, Protocol: tt.protocol, Name: tt.name, RequestTimeout: 300 * time.Millisecond})
			assert.Equal(t, 200, do(h, "GET", tt.path, ""))
			require.True(t, waitFor(5*time.Second, func() bool {
				m := h.Metrics()
				return m.Busy == 0 && m.ASGITasks == 0
			}), "the work was stopped at the timeout")
			check(t, values(t, metrics.NewCollector(h)), map[string]float64{
				`wsgi_requests_total{app="` + tt.name + `",code="200",method="GET"}`: 1,
				`wsgi_request_timeouts_total{app="` + tt.name + `"}`:                 1,
				`wsgi_requests_timed_out_running{app="` + tt.name + `"}`:             0,
				`wsgi_app_exceptions_total{app="` + tt.name + `"}`:                   0,
				`wsgi_asgi_tasks{app="` + tt.name + `"}`:                             0,
			})
		})
	}
}

// TestInFlight: a request in ServeHTTP is in flight; one refused by a
// closed Handler is counted, and not left in flight.
func TestInFlight(t *testing.T) {
	h := newHandler(t, wsgi.Options{App: "behave", Name: "flight"})
	c := metrics.NewCollector(h)
	done := make(chan int)
	go func() { done <- do(h, "GET", "/sleep?0.5", "") }()
	assert.True(t, waitFor(2*time.Second, func() bool { return values(t, c)[`wsgi_requests_in_flight{app="flight"}`] == 1 }))
	assert.Equal(t, 200, <-done)
	require.NoError(t, h.Close())
	assert.Equal(t, 503, do(h, "GET", "/tuple", ""))
	check(t, values(t, c), map[string]float64{
		`wsgi_requests_in_flight{app="flight"}`:                     0,
		`wsgi_requests_total{app="flight",code="200",method="GET"}`: 1,
		`wsgi_requests_total{app="flight",code="503",method="GET"}`: 1,
		`wsgi_queue_rejected_total{app="flight"}`:                   0, // not the queue's
	})
}

// TestStaticFiles: static files are counted with their status and bytes.
func TestStaticFiles(t *testing.T) {
	h := newHandler(t, wsgi.Options{Dir: "../testdata/static", App: "app", Name: "static", Static: true, Prefix: "/p"})
	steps := []struct {
		method, path string
		status       int
	}{
		{"GET", "/p/static/sub/page.txt", 200}, // 29 bytes
		{"HEAD", "/p/static/sub/page.txt", 200},
		{"GET", "/p/static/missing.txt", 404},
		{"POST", "/p/static/sub/page.txt", 405},
	}
	for _, s := range steps {
		assert.Equal(t, s.status, do(h, s.method, s.path, ""), s.method+" "+s.path)
	}
	got := values(t, metrics.NewCollector(h))
	check(t, got, map[string]float64{
		`wsgi_requests_total{app="static",code="200",method="GET"}`:  1,
		`wsgi_requests_total{app="static",code="200",method="HEAD"}`: 1,
		`wsgi_requests_total{app="static",code="404",method="GET"}`:  1,
		`wsgi_requests_total{app="static",code="405",method="POST"}`: 1,
		`wsgi_queue_wait_seconds_count{app="static"}`:                0, // no Python thread taken
	})
	assert.GreaterOrEqual(t, got[`wsgi_response_body_bytes_total{app="static"}`], 29.0, "the file, and the error pages' bodies")
}

// TestAuth: a request refused by BasicAuth is a 401 of its own.
func TestAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("wonderland"), bcrypt.MinCost)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "htpasswd")
	require.NoError(t, os.WriteFile(file, []byte("alice:"+string(hash)+"\n"), 0o600))
	h := newHandler(t, wsgi.Options{Dir: "../testdata/auth", App: "app", Name: "auth", BasicAuth: &wsgi.BasicAuth{HtpasswdFile: file}})

	assert.Equal(t, 401, do(h, "GET", "/", ""))
	r := httptest.NewRequest("GET", "/", nil)
	r.SetBasicAuth("alice", "wonderland")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	assert.Equal(t, 200, rec.Code)
	check(t, values(t, metrics.NewCollector(h)), map[string]float64{
		`wsgi_requests_total{app="auth",code="401",method="GET"}`: 1,
		`wsgi_requests_total{app="auth",code="200",method="GET"}`: 1,
		`wsgi_queue_wait_seconds_count{app="auth"}`:               1, // only the request let in
	})
}
