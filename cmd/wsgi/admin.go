package main

// The admin endpoint (-admin-addr, or the config file's admin_addr):
//
//	/metrics       Prometheus metrics of every app (package metrics), the Go
//	               runtime and the process
//	/healthz       200 while the process is alive
//	/readyz        200 once every app is imported (ASGI lifespan startup
//	               done), 503 before and while draining after SIGTERM
//	/debug/wsgi/   the live view (package debugview): HTML, and JSON at
//	               /debug/wsgi/json
//	/debug/pprof/  Go's profiler
//
// Off by default, and only on a loopback address unless -admin-public:
// the live view shows clients' addresses and what their requests are
// doing, and pprof profiles the process.
//
// With -workers, the master serves the endpoint and covers every worker:
// each worker serves the same endpoints on a Unix socket of its own, in a
// directory only this user can enter, which the master names in
// WSGI_WORKER_ADMIN; the master's /metrics gathers every serving worker's
// metrics with a worker label (parsed with expfmt, merged with
// prometheus.Gatherers) beside its own counts of worker starts, deaths and
// recycles, and its /debug/wsgi/ shows every worker process.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"

	"github.com/gowsgi/wsgi"
	"github.com/gowsgi/wsgi/debugview"
	"github.com/gowsgi/wsgi/metrics"
)

// envWorkerAdmin is the Unix socket path where a worker serves its admin
// endpoints, set by a master that serves -admin-addr. The worker removes
// it from its environment.
const envWorkerAdmin = "WSGI_WORKER_ADMIN"

// checkAdminAddr refuses an admin address other hosts could reach, unless
// public: an empty host (every interface), a name other than localhost,
// or an address that is not loopback.
func checkAdminAddr(addr string, public bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("wsgi: admin address %q: %w", addr, err)
	}
	if public {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("wsgi: admin address %q is not loopback: other hosts could read the live view and profile the process; "+
		"use 127.0.0.1 or ::1, or allow it with -admin-public (config admin_public)", addr)
}

// adminMux routes the admin endpoints. ready says whether the process is
// ready, and why not.
func adminMux(logger *slog.Logger, g prometheus.Gatherer, view debugview.Source, ready func() (bool, string)) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError, // a worker that does not answer leaves the others
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		plain(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if ok, why := ready(); !ok {
			plain(w, http.StatusServiceUnavailable, why)
			return
		}
		plain(w, http.StatusOK, "ready")
	})
	mux.Handle("/debug/wsgi/", debugview.New(view))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func plain(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = fmt.Fprintln(w, msg)
}

// serveAdmin serves mux on ln until stop is called.
func serveAdmin(logger *slog.Logger, ln net.Listener, mux http.Handler) (stop func()) {
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("wsgi: admin endpoint failed", "err", err)
		}
	}()
	return func() {
		_ = srv.Close()
		<-done
	}
}

// processAdmin is the admin endpoint of a process that serves apps: one
// without workers, or a worker. A nil *processAdmin is none.
type processAdmin struct {
	handlers atomic.Pointer[[]*wsgi.Handler] // nil until the apps are imported
	draining atomic.Bool
	stop     func()
}

// openProcessAdmin starts the admin endpoint of a process that serves
// apps, if one is asked for: on -admin-addr outside workers, on the
// master's Unix socket in a worker. It serves before the apps import
// (/readyz says 503 meanwhile) and says draining once ctx is done. It
// returns nil if none is asked for.
func openProcessAdmin(ctx context.Context, logger *slog.Logger, f *flags, wk *workerConn) (*processAdmin, error) {
	var ln net.Listener
	var err error
	worker := 0
	switch {
	case wk != nil:
		path := os.Getenv(envWorkerAdmin)
		if path == "" {
			return nil, nil // the master serves no admin endpoint
		}
		_ = os.Unsetenv(envWorkerAdmin)
		worker = wk.id
		if ln, err = net.Listen("unix", path); err != nil {
			return nil, fmt.Errorf("wsgi: worker %d: admin socket: %w", wk.id, err)
		}
	case f.adminAddr != "":
		if err := checkAdminAddr(f.adminAddr, f.adminPublic); err != nil {
			return nil, err
		}
		if ln, err = net.Listen("tcp", f.adminAddr); err != nil {
			return nil, fmt.Errorf("wsgi: admin endpoint: %w", err)
		}
		logger.Info("wsgi: admin endpoint", "addr", ln.Addr().String())
	default:
		return nil, nil
	}
	a := &processAdmin{}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), appCollector{a})
	view := func(context.Context) debugview.Page {
		return debugview.Page{Taken: time.Now(), Processes: []debugview.Process{debugview.Collect(worker, a.apps()...)}}
	}
	a.stop = serveAdmin(logger, ln, adminMux(logger, reg, view, a.ready))
	go func() {
		<-ctx.Done()
		a.draining.Store(true)
	}()
	return a, nil
}

// setHandlers records that the apps are imported.
func (a *processAdmin) setHandlers(hs ...*wsgi.Handler) {
	if a != nil {
		a.handlers.Store(&hs)
	}
}

func (a *processAdmin) apps() []*wsgi.Handler {
	if p := a.handlers.Load(); p != nil {
		return *p
	}
	return nil
}

// ready: the apps are imported and the process is not draining.
func (a *processAdmin) ready() (bool, string) {
	switch {
	case a.draining.Load():
		return false, "draining: shutting down"
	case a.handlers.Load() == nil:
		return false, "starting: importing the apps"
	}
	return true, ""
}

// close stops the endpoint.
func (a *processAdmin) close() {
	if a != nil {
		a.stop()
	}
}

// appCollector collects the apps' metrics once they are imported. It
// describes nothing (an unchecked collector): the apps are not known when
// it is registered.
type appCollector struct{ a *processAdmin }

func (appCollector) Describe(chan<- *prometheus.Desc) {}

func (c appCollector) Collect(ch chan<- prometheus.Metric) {
	if hs := c.a.apps(); len(hs) > 0 {
		metrics.NewCollector(hs...).Collect(ch)
	}
}

// masterStats are the master's counts of its workers' lives.
type masterStats struct {
	starts   prometheus.Counter
	deaths   *prometheus.CounterVec
	recycles *prometheus.CounterVec
}

func newMasterStats() *masterStats {
	return &masterStats{
		starts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wsgi_worker_starts_total", Help: "Worker processes started."}),
		deaths: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wsgi_worker_deaths_total",
			Help: "Worker processes that ended other than by a clean stop the master asked for, by cause (exit status or signal)."},
			[]string{"cause"}),
		recycles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wsgi_worker_recycles_total",
			Help: "Worker processes replaced, by reason (max-requests, max-rss, reload)."},
			[]string{"reason"}),
	}
}

// deathCause is the cause label of a worker's death: "exit 1",
// "signal SIGKILL".
func deathCause(st *os.ProcessState) string {
	if sig := signalName(st); sig != "" {
		return "signal " + sig
	}
	return "exit " + strconv.Itoa(st.ExitCode())
}

// adminState is what the master's endpoint asks its loop.
type adminState struct {
	ready   bool
	why     string
	workers []adminTarget
}

// adminTarget is a live worker's admin socket.
type adminTarget struct {
	id      int
	pid     int
	sock    string
	serving bool // the slot's current worker (not one being replaced, nor its replacement)
}

// masterAdmin is the admin endpoint of a master.
type masterAdmin struct {
	dir   string // the workers' sockets
	query chan chan adminState
	done  <-chan struct{}
	seq   atomic.Int64
}

// openMasterAdmin starts the master's admin endpoint on f.adminAddr, if
// set; nil if not.
func openMasterAdmin(logger *slog.Logger, f *flags, m *master) (*masterAdmin, func(), error) {
	if f.adminAddr == "" {
		return nil, func() {}, nil
	}
	if err := checkAdminAddr(f.adminAddr, f.adminPublic); err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "wsgi-admin-")
	if err != nil {
		return nil, nil, fmt.Errorf("wsgi: admin endpoint: %w", err)
	}
	ln, err := net.Listen("tcp", f.adminAddr)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("wsgi: admin endpoint: %w", err)
	}
	logger.Info("wsgi: admin endpoint", "addr", ln.Addr().String())
	ma := &masterAdmin{dir: dir, query: make(chan chan adminState), done: m.done}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.stats.starts, m.stats.deaths, m.stats.recycles)
	prometheus.WrapRegistererWith(prometheus.Labels{"worker": "master"}, reg).MustRegister(
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gather := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		gs := prometheus.Gatherers{reg}
		for _, w := range ma.state().workers {
			if w.serving {
				gs = append(gs, workerGatherer{id: w.id, client: unixClient(w.sock)})
			}
		}
		return gs.Gather()
	})
	ready := func() (bool, string) {
		st := ma.state()
		return st.ready, st.why
	}
	stop := serveAdmin(logger, ln, adminMux(logger, gather, ma.view, ready))
	return ma, func() {
		stop()
		_ = os.RemoveAll(dir)
	}, nil
}

// socket is the admin socket path for a new worker of slot id.
func (ma *masterAdmin) socket(id int) string {
	if ma == nil {
		return ""
	}
	return filepath.Join(ma.dir, fmt.Sprintf("worker-%d-%d.sock", id, ma.seq.Add(1)))
}

// state asks the master loop; once it has returned, nothing is ready.
func (ma *masterAdmin) state() adminState {
	reply := make(chan adminState, 1)
	select {
	case ma.query <- reply:
		return <-reply
	case <-ma.done:
		return adminState{why: "stopped"}
	}
}

// answer is the master loop's side of state.
func (m *master) adminState() adminState {
	st := adminState{ready: m.started && !m.stopping}
	switch {
	case m.stopping:
		st.why = "draining: shutting down"
	case !m.started:
		st.why = "starting: workers importing the apps"
	}
	for w := range m.live {
		if w.adminSock == "" {
			continue
		}
		s := m.slots[w.id]
		st.workers = append(st.workers, adminTarget{id: w.id, pid: w.pid, sock: w.adminSock,
			serving: s.cur == w && !w.readyAt.IsZero() && !w.stopping})
	}
	slices.SortFunc(st.workers, func(a, b adminTarget) int {
		if a.id != b.id {
			return a.id - b.id
		}
		return a.pid - b.pid
	})
	return st
}

// view is the master's live view: every live worker's, read in parallel.
func (ma *masterAdmin) view(ctx context.Context) debugview.Page {
	workers := ma.state().workers
	procs := make([]debugview.Process, len(workers))
	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Go(func() {
			procs[i] = fetchView(ctx, w)
		})
	}
	wg.Wait()
	return debugview.Page{Taken: time.Now(), Processes: procs}
}

// fetchView reads one worker's live view.
func fetchView(ctx context.Context, w adminTarget) debugview.Process {
	fail := func(err error) debugview.Process {
		return debugview.Process{Worker: w.id, PID: w.pid, Apps: []debugview.App{}, Error: err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://worker/debug/wsgi/json", nil)
	if err != nil {
		return fail(err)
	}
	resp, err := unixClient(w.sock).Do(req)
	if err != nil {
		return fail(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fail(fmt.Errorf("wsgi: worker's live view: %s", resp.Status))
	}
	var page debugview.Page
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return fail(err)
	}
	if len(page.Processes) != 1 {
		return fail(fmt.Errorf("wsgi: worker's live view has %d processes", len(page.Processes)))
	}
	return page.Processes[0]
}

// unixClient is an HTTP client of the server on a Unix socket.
func unixClient(sock string) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
			DisableKeepAlives: true,
		},
	}
}

// workerGatherer gathers a worker's metrics from its admin socket and
// labels them with its id.
type workerGatherer struct {
	id     int
	client *http.Client
}

func (g workerGatherer) Gather() ([]*dto.MetricFamily, error) {
	resp, err := g.client.Get("http://worker/metrics")
	if err != nil {
		return nil, fmt.Errorf("wsgi: worker %d metrics: %w", g.id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("wsgi: worker %d metrics: %s", g.id, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	byName, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("wsgi: worker %d metrics: %w", g.id, err)
	}
	name, id := "worker", strconv.Itoa(g.id)
	out := make([]*dto.MetricFamily, 0, len(byName))
	for _, mf := range byName {
		for _, m := range mf.Metric {
			m.Label = append(m.Label, &dto.LabelPair{Name: &name, Value: &id})
			slices.SortFunc(m.Label, func(a, b *dto.LabelPair) int {
				switch {
				case a.GetName() < b.GetName():
					return -1
				case a.GetName() > b.GetName():
					return 1
				}
				return 0
			})
		}
		out = append(out, mf)
	}
	return out, nil
}

// signalName is the name of the signal that ended a process ("SIGKILL"),
// or "" if none did.
func signalName(st *os.ProcessState) string {
	ws, ok := st.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return ""
	}
	if name := unix.SignalName(ws.Signal()); name != "" {
		return name
	}
	return strconv.Itoa(int(ws.Signal()))
}
