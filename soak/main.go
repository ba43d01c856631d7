// Command soak runs the soak and fault runs of make soak: it serves
// testdata/soakapp.py in process (wsgi.New behind an http.Server on
// 127.0.0.1:0), drives it over loopback with its own Go clients and checks,
// after each run, that RSS, goroutines, file descriptors, OS threads and
// Python's allocated blocks came back near where they were.
//
//	go run ./soak [-only NAME[,NAME]] [-scale F] [-timeout 25m]
//
// It prints one line per run and exits 1 if any run failed.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gowsgi/wsgi"
)

//go:embed testdata/soakapp.py
var appSource []byte

// Server settings (see newServer).
const (
	threads           = 16
	readHeaderTimeout = 5 * time.Second
	bodyReadTimeout   = 5 * time.Second
	queueTimeout      = 30 * time.Second
)

// Limits checked after every run.
const (
	maxGoroutineGrowth = 3
	maxFDGrowth        = 2
	maxThreadGrowth    = 4
	maxBlocksDelta     = 500
)

const mib = 1 << 20

var (
	only       = flag.String("only", "", "run only the runs whose name starts with one of these comma-separated `names` (hello, error, upload, reset, slow)")
	scale      = flag.Float64("scale", 1.0, "multiply every count (and the slow-client duration) by `F`")
	timeout    = flag.Duration("timeout", 25*time.Minute, "overall time bound; every run also has its own")
	slowCounts = [4]*int{
		flag.Int("slow-headers", 240, "slow-client run: connections trickling their headers"),
		flag.Int("slow-stall", 6, "slow-client run: uploads that send 10 bytes, then stall"),
		flag.Int("slow-steady", 4, "slow-client run: uploads of 60 bytes at 10 bytes/s"),
		flag.Int("slow-unread", 0, "slow-client run: bodies the app does not read, 10 bytes then a stall (the slow-unread-body run has its own)"),
	}
	slowDur      = flag.Duration("slow-duration", 0, "slow-client run length (default 60s times -scale, at least 15s)")
	interpreters = flag.Int("interpreters", 0, "serve the app in `N` sub-interpreters (wsgi.Options.Interpreters; Python 3.13+); "+
		"Python's blocks are then those of the interpreter that answers /blocks")
	verbose = flag.Bool("v", false, "log the server's records (tracebacks of the error paths) to stderr")
)

// srv is the server under test.
type server struct {
	h      *wsgi.Handler
	hs     *http.Server
	ln     net.Listener
	addr   string
	url    string
	client *http.Client // for /blocks and /closes
}

func newServer() (*server, error) {
	dir, err := os.MkdirTemp("", "soak")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "soakapp.py"), appSource, 0o644); err != nil {
		return nil, err
	}
	var logger *slog.Logger
	if *verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	} else {
		logger = slog.New(slog.DiscardHandler)
	}
	h, err := wsgi.New(wsgi.Options{
		Dir:             dir,
		App:             "soakapp",
		Threads:         threads,
		Interpreters:    *interpreters,
		QueueTimeout:    queueTimeout,
		BodyReadTimeout: bodyReadTimeout,
		Logger:          logger,
	})
	if err != nil {
		return nil, fmt.Errorf("%+v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	go func() { _ = hs.Serve(ln) }()
	s := &server{h: h, hs: hs, ln: ln, addr: ln.Addr().String()}
	s.url = "http://" + s.addr
	s.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 30 * time.Second}
	return s, nil
}

func (s *server) get(path string) ([]byte, error) {
	resp, err := s.client.Get(s.url + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("%s: %s", path, resp.Status)
	}
	return b, err
}

func (s *server) blocks() (int, error) {
	b, err := s.get("/blocks")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(string(b))
}

func (s *server) closes(route string) (int, error) {
	b, err := s.get("/closes")
	if err != nil {
		return 0, err
	}
	var m map[string]int
	if err := json.Unmarshal(b, &m); err != nil {
		return 0, err
	}
	return m[route], nil
}

// snapshot is the process' state between runs.
type snapshot struct {
	rss, hwm                   int64 // bytes
	goroutines, fds, osThreads int
	pyBlocks                   int
}

// procStatus reads VmRSS, VmHWM (bytes) and Threads from /proc/self/status.
func procStatus() (rss, hwm int64, threads int) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1, -1, -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			rss = n << 10
		case "VmHWM":
			hwm = n << 10
		case "Threads":
			threads = int(n)
		}
	}
	return rss, hwm, threads
}

func countFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents) - 1 // the directory being read
}

// resetPeak makes VmHWM start again from the current RSS.
func resetPeak() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// measure takes a snapshot once the clients' connections are closed and the
// goroutines have settled (at most 5 seconds, or until at most goal).
func (s *server) measure(goal int) (snapshot, error) {
	var sn snapshot
	var err error
	sn.pyBlocks, err = s.blocks()
	s.client.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	prev := -1
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		n := runtime.NumGoroutine()
		if (goal > 0 && n <= goal) || (goal <= 0 && n == prev) {
			break
		}
		prev = n
	}
	runtime.GC()
	debug.FreeOSMemory()
	sn.goroutines = runtime.NumGoroutine()
	sn.fds = countFDs()
	sn.rss, sn.hwm, sn.osThreads = procStatus()
	return sn, err
}

// result is one run's outcome.
type result struct {
	name     string
	count    int // requests (or connections) completed
	want     int
	note     string // e.g. scaled down
	dur      time.Duration
	before   snapshot
	after    snapshot
	peak     int64
	extra    string // run-specific figures
	failures []string

	bytes     int64 // body bytes moved, for a MB/s figure
	rssLimit  int64 // if > 0, the largest RSS growth (after - before)
	peakLimit int64 // if > 0, the largest peak growth (peak - before)
}

func (r *result) fail(format string, a ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, a...))
}

func fmtMiB(b int64) string { return fmt.Sprintf("%.1f", float64(b)/mib) }

func (r *result) String() string {
	status := "PASS"
	if len(r.failures) > 0 {
		status = "FAIL: " + strings.Join(r.failures, "; ")
	}
	rate := float64(r.count) / r.dur.Seconds()
	s := fmt.Sprintf("%-22s n=%d/%d %s %.0f/s | RSS MiB %s->%s peak %s | gor %d->%d fds %d->%d thr %d->%d pyblocks %d->%d",
		r.name, r.count, r.want, r.dur.Round(100*time.Millisecond), rate,
		fmtMiB(r.before.rss), fmtMiB(r.after.rss), fmtMiB(r.peak),
		r.before.goroutines, r.after.goroutines, r.before.fds, r.after.fds,
		r.before.osThreads, r.after.osThreads, r.before.pyBlocks, r.after.pyBlocks)
	if r.extra != "" {
		s += " | " + r.extra
	}
	if r.note != "" {
		s += " | " + r.note
	}
	return s + " | " + status
}

// errSample keeps a count of errors and the first few distinct messages.
type errSample struct {
	mu   sync.Mutex
	n    int
	msgs []string
}

func (e *errSample) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	m := err.Error()
	if len(e.msgs) < 3 && !slices.Contains(e.msgs, m) {
		e.msgs = append(e.msgs, m)
	}
}

func (e *errSample) String() string {
	return fmt.Sprintf("%d errors (%s)", e.n, strings.Join(e.msgs, " | "))
}

// drive runs do(i) for i in [0, n) on conc goroutines until done or ctx
// ends; it returns how many calls completed.
func drive(ctx context.Context, n, conc int, errs *errSample, do func(i int) error) int {
	var next, done atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if err := do(int(i)); err != nil {
					errs.add(err)
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	return int(done.Load())
}

func newTransport(conc int) *http.Transport {
	return &http.Transport{
		MaxIdleConnsPerHost: conc,
		DisableCompression:  true,
		WriteBufferSize:     64 << 10,
		ReadBufferSize:      64 << 10,
	}
}

// run wraps one run: snapshots before and after, the common checks.
func (s *server) run(ctx context.Context, name string, budget time.Duration, want int, body func(ctx context.Context, r *result)) *result {
	r := &result{name: name, want: want}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	var err error
	if r.before, err = s.measure(0); err != nil {
		r.fail("measure before: %v", err)
		return r
	}
	resetPeak()
	start := time.Now()
	body(ctx, r)
	r.dur = time.Since(start)
	_, r.peak, _ = procStatus()
	if r.bytes > 0 {
		r.extra += fmt.Sprintf(", %.0f MB/s", float64(r.bytes)/r.dur.Seconds()/1e6)
	}
	if ctx.Err() != nil && r.count < r.want {
		r.fail("time bound %v hit after %d of %d", budget, r.count, r.want)
	}
	if r.after, err = s.measure(r.before.goroutines); err != nil {
		r.fail("measure after: %v", err)
	}
	b, a := r.before, r.after
	if a.goroutines > b.goroutines+maxGoroutineGrowth {
		r.fail("goroutines %d -> %d", b.goroutines, a.goroutines)
	}
	if a.fds > b.fds+maxFDGrowth {
		r.fail("fds %d -> %d", b.fds, a.fds)
	}
	if a.osThreads > b.osThreads+maxThreadGrowth {
		r.fail("OS threads %d -> %d", b.osThreads, a.osThreads)
	}
	if d := a.pyBlocks - b.pyBlocks; d > maxBlocksDelta || d < -maxBlocksDelta {
		r.fail("python blocks %d -> %d (%+d)", b.pyBlocks, a.pyBlocks, d)
	}
	return r
}

func scaled(n int) int { return max(1, int(math.Round(float64(n)*(*scale)))) }

// hello: keep-alive GETs of a 13-byte body at concurrency 64.
func (s *server) hello(ctx context.Context, r *result, conc int, maxGrowth int64) {
	tr := newTransport(conc)
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var errs errSample
	r.count = drive(ctx, r.want, conc, &errs, func(int) error {
		resp, err := c.Get(s.url + "/hello")
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != 200 || string(b) != "Hello, world!" {
			return fmt.Errorf("got %s %q", resp.Status, b)
		}
		return nil
	})
	if errs.n > 0 {
		r.fail("%s", errs.String())
	}
	tr.CloseIdleConnections()
	r.extra = fmt.Sprintf("RSS growth limit %d MiB", maxGrowth/mib)
	s.checkGrowth(r, maxGrowth)
}

// checkGrowth sets the RSS growth limit finish checks.
func (s *server) checkGrowth(r *result, maxGrowth int64) { r.rssLimit = maxGrowth }

// finish checks the memory limits once the after snapshot exists.
func finish(r *result) {
	if r.rssLimit > 0 {
		if g := r.after.rss - r.before.rss; g > r.rssLimit {
			r.fail("RSS grew %s MiB > %s MiB", fmtMiB(g), fmtMiB(r.rssLimit))
		}
	}
	if r.peakLimit > 0 {
		g := r.peak - r.before.rss
		r.extra += fmt.Sprintf("; peak growth %s MiB, limit %s MiB", fmtMiB(g), fmtMiB(r.peakLimit))
		if g > r.peakLimit {
			r.fail("peak RSS grew %s MiB > %s MiB", fmtMiB(g), fmtMiB(r.peakLimit))
		}
	}
}

// errorPath describes one fault: what the client must see.
type errorPath struct {
	path      string
	status    int
	body      string
	truncated bool // the connection is cut after body
	closes    bool // close() must run once per request
}

var errorPaths = []errorPath{
	{path: "/raise-before", status: 500, body: "500 Internal Server Error\n"},
	{path: "/raise-after-start", status: 500, body: "500 Internal Server Error\n"},
	{path: "/raise-mid-stream", status: 200, body: "first chunk\n", truncated: true, closes: true},
	{path: "/close-raises", status: 200, body: "body", closes: true},
	{path: "/exc-info-before-body", status: 503, body: "replaced", closes: true},
	{path: "/exc-info-after-body", status: 200, body: "already sent\n", truncated: true},
	{path: "/return-int", status: 500, body: "500 Internal Server Error\n"},
}

func (s *server) errorRun(ctx context.Context, r *result, p errorPath, conc int, maxGrowth int64) {
	tr := newTransport(conc)
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	route := strings.TrimPrefix(p.path, "/")
	closesBefore, err := s.closes(route)
	if err != nil {
		r.fail("closes: %v", err)
	}
	var errs errSample
	r.count = drive(ctx, r.want, conc, &errs, func(int) error {
		resp, err := c.Get(s.url + p.path)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode != p.status || string(b) != p.body:
			return fmt.Errorf("got %s %q (%v), want %d %q", resp.Status, b, err, p.status, p.body)
		case p.truncated && !errors.Is(err, io.ErrUnexpectedEOF):
			return fmt.Errorf("body not cut: %v", err)
		case !p.truncated && err != nil:
			return err
		}
		return nil
	})
	if errs.n > 0 {
		r.fail("%s", errs.String())
	}
	tr.CloseIdleConnections()
	if p.closes {
		// close() runs after the response: wait for the last ones.
		var got int
		waitFor(5*time.Second, func() bool {
			n, err := s.closes(route)
			got = n - closesBefore
			return err == nil && got >= r.count
		})
		r.extra = fmt.Sprintf("close() %d", got)
		if got != r.count {
			r.fail("close() ran %d times for %d requests", got, r.count)
		}
	}
	s.checkGrowth(r, maxGrowth)
}

// prng is a seeded stream of pseudo-random bytes (splitmix64) that hashes
// what it hands out.
type prng struct {
	state uint64
	left  int64
	h     hash.Hash
}

func (p *prng) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n := len(b) &^ 7
	if n == 0 {
		n = len(b)
	}
	for i := 0; i < n; i += 8 {
		p.state += 0x9e3779b97f4a7c15
		z := p.state
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		if i+8 <= n {
			binary.LittleEndian.PutUint64(b[i:], z)
		} else {
			var w [8]byte
			binary.LittleEndian.PutUint64(w[:], z)
			copy(b[i:n], w[:])
		}
	}
	p.h.Write(b[:n])
	p.left -= int64(n)
	return n, nil
}

func (s *server) uploads(ctx context.Context, r *result, conc int, size int64) {
	tr := newTransport(conc)
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 120 * time.Second}
	var errs errSample
	var matched atomic.Int64
	r.count = drive(ctx, r.want, conc, &errs, func(i int) error {
		body := &prng{state: uint64(i)*0x2545f4914f6cdd1d + 1, left: size, h: sha256.New()}
		req, err := http.NewRequestWithContext(ctx, "POST", s.url+"/upload", body)
		if err != nil {
			return err
		}
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var got struct {
			SHA256 string `json:"sha256"`
			Bytes  int64  `json:"bytes"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(b, &got) != nil {
			return fmt.Errorf("got %s %q", resp.Status, b)
		}
		if want := hex.EncodeToString(body.h.Sum(nil)); got.SHA256 != want || got.Bytes != size || body.left != 0 {
			return fmt.Errorf("upload %d: app saw %d bytes sha256 %s, sent %d sha256 %s", i, got.Bytes, got.SHA256, size-body.left, want)
		}
		matched.Add(1)
		return nil
	})
	if errs.n > 0 {
		r.fail("%s", errs.String())
	}
	tr.CloseIdleConnections()
	inFlight := int64(conc) * size
	r.bytes = int64(r.count) * size
	r.extra = fmt.Sprintf("sha256 matched %d; %d MiB each, %.1f GiB sent", matched.Load(), size/mib, float64(r.count)*float64(size)/(1<<30))
	r.peakLimit = inFlight
}

// reset: raw TCP GET /stream, read the first chunk, then close with
// SO_LINGER 0 (an RST).
func (s *server) resets(ctx context.Context, r *result, conc int) {
	before, err := s.closes("stream")
	if err != nil {
		r.fail("closes: %v", err)
		return
	}
	var errs errSample
	req := []byte("GET /stream HTTP/1.1\r\nHost: soak\r\n\r\n")
	r.count = drive(ctx, r.want, conc, &errs, func(int) error {
		d := net.Dialer{Timeout: 5 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", s.addr)
		if err != nil {
			return err
		}
		c := conn.(*net.TCPConn)
		defer func() {
			_ = c.SetLinger(0)
			_ = c.Close()
		}()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(req); err != nil {
			return err
		}
		var buf []byte
		tmp := make([]byte, 4096)
		for {
			n, err := c.Read(tmp)
			buf = append(buf, tmp[:n]...)
			if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 && bytes.Contains(buf[i:], []byte("first\n")) {
				if !bytes.HasPrefix(buf, []byte("HTTP/1.1 200 ")) {
					return fmt.Errorf("got %q", buf[:min(len(buf), 40)])
				}
				return nil
			}
			if err != nil {
				return fmt.Errorf("before the first chunk: %v", err)
			}
		}
	})
	if errs.n > 0 {
		r.fail("%s", errs.String())
	}
	var got int
	waitFor(10*time.Second, func() bool {
		n, err := s.closes("stream")
		got = n - before
		return err == nil && got >= r.count
	})
	r.extra = fmt.Sprintf("close() %d", got)
	if got != r.count {
		r.fail("close() ran %d times for %d resets", got, r.count)
	}
}

// trickle kinds for the slow-client run.
type slowKind int

const (
	slowHeaders    slowKind = iota // headers one byte per 100ms: ReadHeaderTimeout ends it
	slowBodyStall                  // POST /upload, 10 body bytes at 100ms, then nothing: BodyReadTimeout ends it
	slowBodySteady                 // POST /upload of 60 bytes at one per 100ms: must succeed
	slowBodyUnread                 // POST /hello (app does not read) 10 bytes then nothing
)

var slowNames = []string{"headers", "body-stall", "body-steady", "body-unread"}

type slowStats struct {
	mu        sync.Mutex
	started   [4]int
	ended     [4]int     // the server answered or closed
	ok        [4]int     // ended as expected
	maxEnd    [4]float64 // longest time from the last byte sent to the end, seconds
	openAtEnd [4]int     // still open when the run stopped, past the bound
	bad       errSample
}

// slowConn runs one trickling connection until the server ends it or ctx
// ends; bound is how long after the last byte the server must end it.
func (s *server) slowConn(ctx context.Context, kind slowKind, st *slowStats) {
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		if ctx.Err() == nil {
			st.bad.add(err)
		}
		return
	}
	c := conn.(*net.TCPConn)
	defer c.Close()
	st.mu.Lock()
	st.started[kind]++
	st.mu.Unlock()

	// The reader sees the server's answer or close.
	type answer struct {
		data []byte
		at   time.Time
	}
	ended := make(chan answer, 1)
	go func() {
		if kind == slowBodySteady { // Connection: close; the body has the sha256
			b, _ := io.ReadAll(c)
			ended <- answer{b, time.Now()}
			return
		}
		// The end is a response head or the connection's close.
		var b []byte
		tmp := make([]byte, 4096)
		for {
			n, err := c.Read(tmp)
			b = append(b, tmp[:n]...)
			if err != nil || bytes.Contains(b, []byte("\r\n\r\n")) {
				ended <- answer{b, time.Now()}
				return
			}
		}
	}()

	var head string
	var body []byte
	var stallAfter int // body bytes before the stall; -1 for none
	switch kind {
	case slowHeaders:
		head = "GET /hello HTTP/1.1\r\nHost: soak\r\nX-Slow: " + strings.Repeat("a", 1000)
	case slowBodyStall:
		_, _ = c.Write([]byte("POST /upload HTTP/1.1\r\nHost: soak\r\nContent-Length: 1048576\r\n\r\n"))
		body, stallAfter = make([]byte, 1<<20), 10
	case slowBodySteady:
		body = bytes.Repeat([]byte("0123456789"), 6)
		_, _ = c.Write(fmt.Appendf(nil, "POST /upload HTTP/1.1\r\nHost: soak\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", len(body)))
		stallAfter = -1
	case slowBodyUnread:
		_, _ = c.Write([]byte("POST /hello HTTP/1.1\r\nHost: soak\r\nContent-Length: 100\r\n\r\n"))
		body, stallAfter = make([]byte, 100), 10
	}
	data := []byte(head)
	if kind != slowHeaders {
		data = body
		if stallAfter >= 0 {
			data = body[:stallAfter]
		}
	}
	dialed := time.Now()
	last := dialed
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var a answer
	var gotAnswer bool
	for i := 0; !gotAnswer; {
		select {
		case <-ctx.Done():
			// Still open: fine if the server's bound has not passed yet.
			since, limit := time.Since(last), bodyReadTimeout+2*time.Second
			if kind == slowHeaders {
				since, limit = time.Since(dialed), readHeaderTimeout+2*time.Second
			}
			if kind == slowBodySteady || since < limit {
				return
			}
			st.mu.Lock()
			st.openAtEnd[kind]++
			st.mu.Unlock()
			return
		case a = <-ended:
			gotAnswer = true
		case <-tick.C:
			if i < len(data) {
				if _, err := c.Write(data[i : i+1]); err == nil {
					last = time.Now()
				}
				i++
			}
		}
	}
	wait := a.at.Sub(last).Seconds()
	if kind == slowHeaders {
		wait = a.at.Sub(dialed).Seconds() // the bound is on the whole head
	}
	status := ""
	if line, _, ok := bytes.Cut(a.data, []byte("\r\n")); ok {
		status = string(line)
	}
	good := false
	switch kind {
	case slowHeaders:
		good = wait < (readHeaderTimeout + 2*time.Second).Seconds()
	case slowBodyStall:
		good = wait < (bodyReadTimeout+2*time.Second).Seconds() && a.at.Sub(last) > bodyReadTimeout-time.Second
	case slowBodySteady:
		sum := sha256.Sum256(body)
		good = strings.HasPrefix(status, "HTTP/1.1 200") && bytes.Contains(a.data, []byte(hex.EncodeToString(sum[:])))
	case slowBodyUnread:
		good = wait < (readHeaderTimeout + 2*time.Second).Seconds()
	}
	st.mu.Lock()
	st.ended[kind]++
	if kind != slowBodySteady {
		st.maxEnd[kind] = max(st.maxEnd[kind], wait)
	}
	if good {
		st.ok[kind]++
	}
	st.mu.Unlock()
	if !good {
		st.bad.add(fmt.Errorf("%s: ended %.1fs after the last byte with %q", slowNames[kind], wait, status))
	}
}

func (s *server) slow(ctx context.Context, r *result, dur time.Duration, counts [4]int) {
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	var st slowStats
	var wg sync.WaitGroup
	for kind, n := range counts {
		for j := range n {
			wg.Go(func() {
				// Spread the starts over the first second.
				select {
				case <-time.After(time.Duration(j) * time.Second / time.Duration(n)):
				case <-ctx.Done():
				}
				for ctx.Err() == nil {
					s.slowConn(ctx, slowKind(kind), &st)
					// A slow client comes back, but not in a tight loop:
					// once the server answers at once (an unread body),
					// reconnecting without a pause only measures how
					// fast the kernel recycles loopback connections.
					select {
					case <-time.After(50 * time.Millisecond):
					case <-ctx.Done():
					}
				}
			})
		}
	}
	// How many Python threads are busy, sampled.
	var maxBusy, sumBusy, samples int
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				b := s.h.Stats().Busy
				maxBusy = max(maxBusy, b)
				sumBusy += b
				samples++
			}
		}
	})
	// The normal client: one keep-alive connection, GET /hello in a loop.
	tr := newTransport(1)
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var lat []time.Duration
	var errs errSample
	var total int
	for ctx.Err() == nil {
		t0 := time.Now()
		resp, err := c.Get(s.url + "/hello")
		if err == nil {
			var b []byte
			b, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && (resp.StatusCode != 200 || string(b) != "Hello, world!") {
				err = fmt.Errorf("got %s %q", resp.Status, b)
			}
		}
		if ctx.Err() != nil && err != nil {
			break // cut by the end of the run
		}
		total++
		if err != nil {
			errs.add(err)
		} else {
			lat = append(lat, time.Since(t0))
		}
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	tr.CloseIdleConnections()
	r.count, r.want = total, total
	okRate := 100 * float64(len(lat)) / float64(max(total, 1))
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(10 * time.Microsecond)
	}
	var parts []string
	for k := range counts {
		if counts[k] == 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s x%d: %d conns, %d ended as expected (max %.1fs)",
			slowNames[k], counts[k], st.started[k], st.ok[k], st.maxEnd[k]))
	}
	r.extra = fmt.Sprintf("normal client %.2f%% ok, p50 %v p99 %v max %v; python threads busy mean %.1f max %d of %d; %s",
		okRate, pct(0.5), pct(0.99), pct(1), float64(sumBusy)/float64(max(samples, 1)), maxBusy, threads, strings.Join(parts, "; "))
	if okRate < 99.9 {
		r.fail("normal client success %.2f%% < 99.9%% (%s)", okRate, errs.String())
	}
	if st.bad.n > 0 {
		r.fail("slow connections: %s", st.bad.String())
	}
	for k := range counts {
		if st.openAtEnd[k] > 0 {
			r.fail("%d %s connections outlived the server's timeout", st.openAtEnd[k], slowNames[k])
		}
		if counts[k] > 0 && st.ended[k] == 0 {
			r.fail("no %s connection was ended by the server", slowNames[k])
		}
	}
}

// warmUp runs a little of everything so that pools, caches, imports and
// OS threads exist before the first baseline.
func warmUp(ctx context.Context, s *server) {
	var r result
	r.want = 5000
	s.hello(ctx, &r, 64, 0)
	for _, p := range errorPaths {
		r = result{want: 500}
		s.errorRun(ctx, &r, p, 64, 0)
	}
	r = result{want: 32}
	s.uploads(ctx, &r, 16, mib)
	r = result{want: 500}
	s.resets(ctx, &r, 16)
	_, _ = s.blocks()
}

func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func selected(name string) bool {
	if *only == "" {
		return true
	}
	for p := range strings.SplitSeq(*only, ",") {
		if p = strings.TrimSpace(p); p != "" && strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func main() {
	flag.Parse()
	if *scale <= 0 {
		fmt.Fprintln(os.Stderr, "soak: -scale must be positive")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	s, err := newServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	fmt.Printf("soak: %s, Python %s, GOMAXPROCS %d, %d CPUs, server %s (Threads %d, ReadHeaderTimeout %v, BodyReadTimeout %v), scale %g, %s\n",
		runtime.Version(), wsgi.PythonVersion(), runtime.GOMAXPROCS(0), runtime.NumCPU(), s.addr, threads, readHeaderTimeout, bodyReadTimeout,
		*scale, time.Now().UTC().Format(time.RFC3339))

	start := time.Now()
	warmUp(ctx, s)
	fmt.Printf("warm-up done in %v\n", time.Since(start).Round(100*time.Millisecond))

	failed := false
	report := func(r *result) {
		finish(r)
		fmt.Println(r)
		if len(r.failures) > 0 {
			failed = true
		}
	}
	if selected("hello") {
		report(s.run(ctx, "hello", 8*time.Minute, scaled(1_000_000), func(ctx context.Context, r *result) {
			s.hello(ctx, r, 64, 16*mib)
		}))
	}
	for _, p := range errorPaths {
		name := "error" + p.path
		if !selected(name) {
			continue
		}
		report(s.run(ctx, name, 2*time.Minute, scaled(100_000), func(ctx context.Context, r *result) {
			s.errorRun(ctx, r, p, 64, 8*mib)
		}))
	}
	if selected("upload") {
		n := scaled(10_000)
		report(s.run(ctx, "upload-16MiB", 10*time.Minute, n, func(ctx context.Context, r *result) {
			s.uploads(ctx, r, 16, 16*mib)
		}))
	}
	if selected("reset") {
		report(s.run(ctx, "reset-after-first-chunk", 3*time.Minute, scaled(50_000), func(ctx context.Context, r *result) {
			s.resets(ctx, r, 16)
		}))
	}
	if selected("slow-clients") {
		dur := max(15*time.Second, time.Duration(float64(60*time.Second)**scale))
		if *slowDur > 0 {
			dur = *slowDur
		}
		var counts [4]int
		for k, p := range slowCounts {
			counts[k] = *p
		}
		report(s.run(ctx, "slow-clients", dur+30*time.Second, 0, func(ctx context.Context, r *result) {
			s.slow(ctx, r, dur, counts)
		}))
	}
	if selected("slow-unread-body") {
		// More stalled bodies than Threads on a route that does not read
		// its body: net/http's drain of the rest must not hold the app.
		dur := max(15*time.Second, time.Duration(float64(30*time.Second)**scale))
		report(s.run(ctx, "slow-unread-body", dur+30*time.Second, 0, func(ctx context.Context, r *result) {
			s.slow(ctx, r, dur, [4]int{slowBodyUnread: threads + 4})
		}))
	}

	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	_ = s.hs.Shutdown(sctx)
	_ = s.h.Shutdown(sctx)
	fmt.Printf("total %v\n", time.Since(start).Round(time.Second))
	if failed {
		fmt.Println("soak: FAIL")
		os.Exit(1)
	}
	fmt.Println("soak: PASS")
}
