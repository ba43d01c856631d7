package wsgi_test

// Tests for the cases of SECURITY.md that the other test files do not
// cover, or cover only in part. SECURITY_TESTS.md maps every case to its
// tests. Each test here also checks, through checkBaseline, that
// goroutines, file descriptors, OS threads and Python's allocated blocks
// come back to where they were and that the process still serves.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

// --- baseline ---------------------------------------------------------------

var secProbe struct {
	once sync.Once
	h    *wsgi.Handler
	err  error
}

// secProbeHandler is a behave handler kept for the whole run: its /blocks
// route reports Python's allocated blocks after a collection, and its
// /tuple route shows that the process still serves.
func secProbeHandler(t *testing.T) *wsgi.Handler {
	t.Helper()
	secProbe.once.Do(func() {
		secProbe.h, secProbe.err = wsgi.New(wsgi.Options{
			Dir: "testdata", App: "behave", Name: "security-probe",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if secProbe.err == nil {
			for range 3 { // the first collections and JSON dumps allocate caches
				do(secProbe.h, "GET", "/blocks", nil)
			}
		}
	})
	require.NoError(t, secProbe.err, "%+v", secProbe.err)
	return secProbe.h
}

func pyBlocks(t *testing.T) int {
	t.Helper()
	var n int
	getJSON(t, secProbeHandler(t), "/blocks", &n)
	return n
}

func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(entries)
}

// checkBaseline records goroutines, open file descriptors, OS threads and
// Python allocated blocks now, and checks at the end of the test (before
// the handlers and servers made earlier in the test are closed) that they
// came back within a small tolerance and that the process still serves.
// Call it after a warm-up round: the first use of a Python feature
// allocates caches for good.
func checkBaseline(t *testing.T) {
	t.Helper()
	probe := secProbeHandler(t)
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(20 * time.Millisecond)
	goroutines, fds, threads, blocks := runtime.NumGoroutine(), openFDs(t), osThreads(t), pyBlocks(t)
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		assert.Equal(t, 200, do(probe, "GET", "/tuple", nil).Code, "the process still serves")
		assert.True(t, waitFor(3*time.Second, func() bool { return runtime.NumGoroutine() <= goroutines+2 }),
			"goroutines: %d before, %d after", goroutines, runtime.NumGoroutine())
		assert.True(t, waitFor(2*time.Second, func() bool { return openFDs(t) <= fds+2 }),
			"open fds: %d before, %d after", fds, openFDs(t))
		maxThreads := threads + runtime.GOMAXPROCS(0) + 2
		assert.True(t, waitFor(2*time.Second, func() bool { return osThreads(t) <= maxThreads }),
			"OS threads: %d before, %d after", threads, osThreads(t))
		var after int
		assert.True(t, waitFor(2*time.Second, func() bool {
			after = pyBlocks(t)
			return after >= blocks-500 && after <= blocks+500
		}), "Python allocated blocks: %d before, %d after", blocks, after)
	})
}

// --- helpers ----------------------------------------------------------------

// secApp is testdata/security/app.py.
func secApp(t *testing.T, opts ...func(*wsgi.Options)) (*wsgi.Handler, *logBuffer) {
	o := wsgi.Options{Dir: "testdata/security", App: "app"}
	for _, f := range opts {
		f(&o)
	}
	return newHandler(t, o)
}

// secState is what the security app's routes recorded.
func secState(t *testing.T, h http.Handler) map[string]any {
	t.Helper()
	m := map[string]any{}
	getJSON(t, h, "/state", &m)
	return m
}

// secDial opens a raw connection to srv with a deadline.
func secDial(t *testing.T, srv string, d time.Duration) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", srv)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(d)))
	return conn
}

// secRaw sends raw on a new connection and reads the response head and
// body as they come off the wire (the connection must be closed by the
// server, or the deadline ends the read).
func secRaw(t *testing.T, addr, raw string) string {
	t.Helper()
	conn := secDial(t, addr, 3*time.Second)
	_, err := io.WriteString(conn, raw)
	require.NoError(t, err)
	b, _ := io.ReadAll(conn)
	return string(b)
}

// headerLines returns the header lines of a raw response, in order.
func headerLines(raw string) []string {
	head, _, _ := strings.Cut(raw, "\r\n\r\n")
	lines := strings.Split(head, "\r\n")
	return lines[1:]
}

// --- Requests ---------------------------------------------------------------

// SECURITY.md 1: Content-Length with Transfer-Encoding: chunked.
func TestSecurityContentLengthWithChunked(t *testing.T) {
	h, _ := secApp(t)
	srv := serve(t, h)
	addr := srv.Listener.Addr().String()
	secRaw(t, addr, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") // warm-up
	checkBaseline(t)

	conn := secDial(t, addr, 3*time.Second)
	_, err := io.WriteString(conn, "POST /environ HTTP/1.1\r\nHost: x\r\n"+
		"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"5\r\nhello\r\n0\r\n\r\n"+
		"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	body := readAll(t, resp.Body)
	require.Equal(t, 200, resp.StatusCode, string(body))
	env := decode(t, body)
	assert.Equal(t, "hello", env["body"], "the app sees the chunked body, once")
	assert.Equal(t, true, env["wsgi.input_terminated"])
	assert.NotContains(t, env, "CONTENT_LENGTH")
	assert.Equal(t, "chunked", env["HTTP_TRANSFER_ENCODING"], "the framing the app was served, as under gunicorn")
	assert.True(t, resp.Close, "the response carries Connection: close (got %q)", resp.Header.Get("Connection"))
	rest, _ := io.ReadAll(br)
	assert.NotContains(t, string(rest), "HTTP/1.1", "the request pipelined behind it is not served on this connection")
}

// SECURITY.md 2, 3, 4, 5: header spoofing and encoding through a real
// server and the real app.
func TestSecurityRequestHeadersOnTheWire(t *testing.T) {
	h, _ := secApp(t)
	srv := serve(t, h)
	addr := srv.Listener.Addr().String()
	secRaw(t, addr, "POST /environ HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx")
	checkBaseline(t)

	raw := secRaw(t, addr, "POST /environ/caf%C3%A9%2Fx HTTP/1.1\r\n"+
		"Host: h.test\r\n"+
		"X_Forwarded_For: 127.0.0.1\r\n"+
		"X-Forwarded-For: 1.2.3.4\r\n"+
		"X-Forwarded_For: 6.6.6.6\r\n"+
		"X_Custom: evil\r\n"+
		"Content_Length: 99\r\n"+
		"Content_Type: text/evil\r\n"+
		"Proxy: http://evil.test\r\n"+
		"X-Latin: caf\xe9 \x80\xff\r\n"+
		"Accept: text/html\r\nAccept: */*\r\n"+
		"Cookie: a=1\r\nCookie: b=2\r\n"+
		"Content-Type: text/plain\r\n"+
		"Content-Length: 3\r\n"+
		"Connection: close\r\n\r\nabc")
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), nil)
	require.NoError(t, err)
	body := readAll(t, resp.Body)
	require.Equal(t, 200, resp.StatusCode, string(body))
	env := decode(t, body)
	// 2: the underscore variants are dropped.
	assert.Equal(t, "1.2.3.4", env["HTTP_X_FORWARDED_FOR"])
	assert.NotContains(t, env, "HTTP_X_CUSTOM")
	// 3
	assert.NotContains(t, env, "HTTP_CONTENT_LENGTH")
	assert.NotContains(t, env, "HTTP_CONTENT_TYPE")
	assert.NotContains(t, env, "HTTP_PROXY")
	assert.Equal(t, "3", env["CONTENT_LENGTH"])
	assert.Equal(t, "text/plain", env["CONTENT_TYPE"])
	assert.Equal(t, "abc", env["body"])
	// 4: latin-1 both ways.
	assert.Equal(t, "caf\u00e9 \u0080\u00ff", env["HTTP_X_LATIN"])
	assert.Equal(t, "/environ/caf\u00c3\u00a9/x", env["PATH_INFO"])
	assert.Equal(t, fmt.Sprintf("%x", "/environ/caf\xc3\xa9/x"), env["PATH_INFO_BYTES"])
	// 5
	assert.Equal(t, "text/html, */*", env["HTTP_ACCEPT"])
	assert.Equal(t, "a=1; b=2", env["HTTP_COOKIE"])
	// 6: not from a trusted proxy.
	assert.Equal(t, "127.0.0.1", env["REMOTE_ADDR"])
	assert.Equal(t, "http", env["wsgi.url_scheme"])

	// 4: %00 gets 400, before the app.
	for _, target := range []string{"/environ/a%00b", "/environ/%00", "/environ%2F%00"} {
		raw = secRaw(t, addr, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		assert.True(t, strings.HasPrefix(raw, "HTTP/1.1 400 "), "%s: %q", target, raw)
	}
}

// SECURITY.md 6: forwarded headers count only from trusted proxies.
func TestSecurityForwardedOnlyFromTrustedProxies(t *testing.T) {
	trusted, _ := secApp(t, func(o *wsgi.Options) { o.TrustedProxies = []string{"127.0.0.1"} })
	untrusted, _ := secApp(t, func(o *wsgi.Options) { o.TrustedProxies = []string{"10.0.0.0/8"} })
	plain, _ := secApp(t)
	servers := map[string]string{}
	for name, h := range map[string]*wsgi.Handler{"trusted": trusted, "untrusted": untrusted, "plain": plain} {
		servers[name] = serve(t, h).URL
	}
	get := func(url string, hdr ...string) map[string]any {
		req, err := http.NewRequest("GET", url+"/environ", nil)
		require.NoError(t, err)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Add(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		return decode(t, readAll(t, resp.Body))
	}
	for _, url := range servers { // each Handler's pooled goroutine (gopool.go) starts before the baseline
		get(url)
	}
	checkBaseline(t)

	xff := []string{"X-Forwarded-For", "6.6.6.6, 203.0.113.7", "X-Forwarded-Proto", "https"}
	fwd := []string{"Forwarded", `for=198.51.100.17;proto=https`}
	env := get(servers["trusted"], xff...)
	assert.Equal(t, "203.0.113.7", env["REMOTE_ADDR"])
	assert.Equal(t, "https", env["wsgi.url_scheme"])
	env = get(servers["trusted"], fwd...)
	assert.Equal(t, "198.51.100.17", env["REMOTE_ADDR"])
	assert.Equal(t, "https", env["wsgi.url_scheme"])
	for _, name := range []string{"untrusted", "plain"} {
		for _, hdr := range [][]string{xff, fwd} {
			env = get(servers[name], hdr...)
			assert.Equal(t, "127.0.0.1", env["REMOTE_ADDR"], name)
			assert.Equal(t, "http", env["wsgi.url_scheme"], name)
			assert.NotContains(t, env, "HTTPS", name)
		}
	}
}

// SECURITY.md 7: 100 Continue goes out when the app first reads, not
// before (TestExpectContinue covers an app that reads at once, and one
// that never reads).
func TestSecurityExpectContinueOnFirstRead(t *testing.T) {
	h, _ := secApp(t)
	srv := serve(t, h)
	addr := srv.Listener.Addr().String()
	secRaw(t, addr, "POST /late-read?delay=0 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx")
	checkBaseline(t)

	conn := secDial(t, addr, 5*time.Second)
	start := time.Now()
	_, err := io.WriteString(conn, "POST /late-read?delay=0.4 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "HTTP/1.1 100 Continue\r\n", line)
	assert.GreaterOrEqual(t, time.Since(start), 350*time.Millisecond, "100 Continue came before the app read")
	_, _ = br.ReadString('\n')
	_, err = io.WriteString(conn, "hello")
	require.NoError(t, err)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	assert.Equal(t, "read hello", string(readAll(t, resp.Body)))
}

// --- wsgi.input -------------------------------------------------------------

// SECURITY.md 8, 9: a huge read size allocates nothing of that size;
// nothing is read past CONTENT_LENGTH (a request pipelined behind the body
// is served); a chunked body sets wsgi.input_terminated and ends with b"".
func TestSecurityInputBounds(t *testing.T) {
	h, _ := secApp(t)
	srv := serve(t, h)
	addr := srv.Listener.Addr().String()
	do(h, "POST", "/read-huge", strings.NewReader("0123456789"))
	checkBaseline(t)

	var huge map[string]any
	rec := do(h, "POST", "/read-huge", strings.NewReader("0123456789"))
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &huge), rec.Body.String())
	assert.Equal(t, 10.0, huge["len"])
	assert.Equal(t, "", huge["rest"])
	assert.Less(t, huge["peak"], float64(64<<10), "read(1<<40) allocated by what it asked for")

	raw := secRaw(t, addr, "POST /read-over HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"+
		"line1\nline2"+
		"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	br := bufio.NewReader(strings.NewReader(raw))
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	got := decode(t, readAll(t, resp.Body))
	assert.Equal(t, map[string]any{"first": "line1\n", "rest": "line2", "then": ""}, got)
	resp, err = http.ReadResponse(br, nil)
	require.NoError(t, err, "the request behind the body was not eaten")
	assert.Equal(t, "hello", string(readAll(t, resp.Body)))

	raw = secRaw(t, addr, "POST /environ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"+
		"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
	resp, err = http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), nil)
	require.NoError(t, err)
	env := decode(t, readAll(t, resp.Body))
	assert.Equal(t, true, env["wsgi.input_terminated"])
	assert.Equal(t, "abcdefg", env["body"])
	assert.Equal(t, []any{"", "", ""}, env["after_eof"], `read(), read(10), readline() after the end: b""`)
	assert.NotContains(t, env, "CONTENT_LENGTH")
}

// SECURITY.md 10: a declared body over the limit gets 413 before the app
// runs; one discovered mid-stream raises from read().
func TestSecurityMaxBodyBeforeTheApp(t *testing.T) {
	h, _ := secApp(t, func(o *wsgi.Options) { o.MaxBodyBytes = 100 })
	do(h, "POST", "/record-read", strings.NewReader("x"))
	do(h, "GET", "/reset", nil)
	checkBaseline(t)

	rec := do(h, "POST", "/record-read", strings.NewReader(strings.Repeat("x", 101)))
	assert.Equal(t, 413, rec.Code)
	assert.NotContains(t, secState(t, h), "record-read", "the app never ran")

	r := newRequest("POST", "/record-read", "")
	r.Body = io.NopCloser(strings.NewReader(strings.Repeat("x", 500)))
	r.ContentLength = -1
	assert.Equal(t, 200, record(h, r).Code)
	st := secState(t, h)
	assert.Equal(t, "raised", st["record-read"])
	assert.Equal(t, true, st["record-read-oserror"], "%v", st)
	assert.Contains(t, st["record-read-msg"], "100-byte limit")
	do(h, "GET", "/reset", nil)
}

// SECURITY.md 12: a client that goes away mid-upload makes read() raise an
// OSError subclass, never return a short body. TestClientResetMidUpload
// only checks the handler stays healthy.
func TestSecurityClientGoneMidUploadRaises(t *testing.T) {
	h, _ := secApp(t)
	srv := serve(t, h)
	addr := srv.Listener.Addr().String()
	upload := func(reset bool) map[string]any {
		do(h, "GET", "/reset", nil)
		conn, err := net.DialTCP("tcp", nil, srv.Listener.Addr().(*net.TCPAddr))
		require.NoError(t, err)
		_, err = io.WriteString(conn, "POST /record-read HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\npartial body")
		require.NoError(t, err)
		time.Sleep(50 * time.Millisecond)
		if reset {
			require.NoError(t, conn.SetLinger(0)) // RST rather than FIN
		}
		require.NoError(t, conn.Close())
		var st map[string]any
		require.True(t, waitFor(2*time.Second, func() bool {
			st = secState(t, h)
			return st["record-read"] != nil
		}), "the app's read() never ended")
		return st
	}
	upload(true)
	secRaw(t, addr, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	checkBaseline(t)

	for _, reset := range []bool{true, false} {
		st := upload(reset)
		assert.Equal(t, "raised", st["record-read"], "reset=%v: %v", reset, st)
		assert.Equal(t, true, st["record-read-oserror"], "reset=%v: an OSError subclass: %v", reset, st)
	}
	do(h, "GET", "/reset", nil)
}

// SECURITY.md 13: write, wsgi.input and wsgi.errors used from a thread of
// the app's own, while the request runs and after it ended. After the end
// they raise; at no time may Go's ResponseWriter or the request's state be
// touched from two goroutines at once, or after ServeHTTP returned (run
// with -race).
func TestSecurityObjectsUsedFromAnotherThread(t *testing.T) {
	h, _ := secApp(t)
	srv := serve(t, h)
	run := func() (string, map[string]any, error) {
		var body []byte
		client := &http.Client{Timeout: time.Second} // a corrupt chunked body may never end
		resp, err := client.Get(srv.URL + "/bg-write?n=300")
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		var got map[string]any
		getJSON(t, h, "/bg-result", &got)
		return string(body), got, err
	}
	run()
	checkBaseline(t)

	body, got, err := run()
	assert.NoError(t, err, "the response is well-formed")
	assert.Equal(t, strings.Repeat("m", 300), strings.ReplaceAll(body, "t", ""),
		"the request's own body arrives whole, the thread's writes only added")
	for _, name := range []string{"write", "input", "errors"} {
		assert.NotZero(t, got[name+":ValueError"], "%s raises once the request ended: %v", name, got)
	}
	assert.Contains(t, fmt.Sprint(got["write:last"]), "used after the request ended")
}

// --- start_response, status, headers ----------------------------------------

// SECURITY.md 17: exactly one Content-Length on the wire whatever the
// app's case; 18: two Set-Cookie headers stay two lines, in order.
func TestSecurityResponseHeadersOnTheWire(t *testing.T) {
	h, _ := secApp(t)
	srv := serve(t, h)
	addr := srv.Listener.Addr().String()
	secRaw(t, addr, "GET /cookies HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	checkBaseline(t)

	raw := secRaw(t, addr, "GET /dup-length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	var lengths []string
	for _, l := range headerLines(raw) {
		if strings.HasPrefix(strings.ToLower(l), "content-length:") {
			lengths = append(lengths, l)
		}
	}
	assert.Equal(t, []string{"Content-Length: 5"}, lengths, raw)
	assert.True(t, strings.HasSuffix(raw, "\r\n\r\nhello"), raw)

	raw = secRaw(t, addr, "GET /cookies HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	var cookies []string
	for _, l := range headerLines(raw) {
		if name, v, ok := strings.Cut(l, ": "); ok && strings.EqualFold(name, "Set-Cookie") {
			cookies = append(cookies, v)
		}
	}
	assert.Equal(t, []string{"first=1; Path=/", "second=2; HttpOnly", "third=3"}, cookies, raw)
}

// --- body iteration -----------------------------------------------------------

// SECURITY.md 25: when the client leaves mid-stream, at most one more
// next() runs, then close() (the generator's finally) within a second.
func TestSecurityClientGoneMidStreamTiming(t *testing.T) {
	h, _ := secApp(t)
	srv := serve(t, h)
	addr := srv.Listener.Addr().String()
	stream := func() (extra float64, closeAfter time.Duration) {
		conn := secDial(t, addr, 5*time.Second)
		_, err := io.WriteString(conn, "GET /slow-stream HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		_, err = io.ReadFull(conn, make([]byte, 1500)) // head and a few chunks
		require.NoError(t, err)
		require.NoError(t, conn.Close())
		var now float64
		getJSON(t, h, "/now", &now)
		before := secState(t, h)["slow-next"].(float64)
		var st map[string]any
		ok := waitFor(2*time.Second, func() bool {
			st = secState(t, h)
			return st["slow-closed-at"] != nil
		})
		require.True(t, ok, "close() never ran: %v", st)
		closedAt := st["slow-closed-at"].(float64)
		return st["slow-next"].(float64) - before, time.Duration((closedAt - now) * float64(time.Second))
	}
	stream()
	checkBaseline(t)

	extra, after := stream()
	assert.LessOrEqual(t, extra, 1.0, "next() calls after the client left")
	assert.Less(t, after, time.Second, "close() ran %v after the client left", after)
}

// SECURITY.md 26: close() is called exactly once on every path, and an
// exception from close() is logged.
func TestSecurityCloseExactlyOnce(t *testing.T) {
	h, logs := secApp(t)
	srv := serve(t, h)
	addr := srv.Listener.Addr().String()
	tests := []struct {
		path, method string
		status       int
		body         string
		truncated    bool
	}{
		{"/close/normal", "GET", 200, "ab", false},
		{"/close/list-like", "GET", 200, "one", false},
		{"/close/raise-next", "GET", 500, "500 Internal Server Error\n", false},
		{"/close/raise-next-later", "GET", 200, "first", true},
		{"/close/bad-start", "GET", 500, "500 Internal Server Error\n", false},
		{"/close/bad-start-caught", "GET", 200, "recovered", false},
		{"/close/head", "HEAD", 200, "", false},
		{"/close/write", "GET", 200, "written then yielded", false},
		{"/close/write-only", "GET", 200, "written only", false},
		{"/close/close-raises", "GET", 200, "body", false},
		{"/close/no-start", "GET", 500, "500 Internal Server Error\n", false},
		{"/close/exc-info", "GET", 502, "replaced", false},
	}
	round := func(check bool) {
		for _, tt := range tests {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if check {
				assert.Equal(t, tt.status, resp.StatusCode, tt.path)
				assert.Equal(t, tt.body, string(b), tt.path)
				assert.Equal(t, tt.truncated, err != nil, "%s: connection aborted", tt.path)
			}
		}
		// The client leaves mid-stream.
		conn := secDial(t, addr, 5*time.Second)
		_, err := io.WriteString(conn, "GET /close/gone HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		_, err = io.ReadFull(conn, make([]byte, 4096))
		require.NoError(t, err)
		require.NoError(t, conn.Close())
		require.True(t, waitFor(time.Second, func() bool { return secState(t, h)["close:gone"] != nil }),
			"close() after the client left")
	}
	round(false)
	do(h, "GET", "/reset", nil)
	checkBaseline(t)

	round(true)
	time.Sleep(50 * time.Millisecond) // a second close() would show by now
	st := secState(t, h)
	for _, tt := range tests {
		assert.Equal(t, 1.0, st["close:"+tt.path[len("/close/"):]], "close() calls for %s", tt.path)
	}
	assert.Equal(t, 1.0, st["close:gone"], "close() calls when the client left")
	assert.Contains(t, logs.String(), "wsgi: the app's close() raised an exception")
	assert.Contains(t, logs.String(), "close of close-raises failed")
	do(h, "GET", "/reset", nil)
}

// --- the embedding ------------------------------------------------------------

// SECURITY.md 27: BaseException subclasses raised from the body before
// its first chunk (TestAppFailures covers them raised by the app call).
func TestSecurityBaseExceptionsInBody(t *testing.T) {
	h, logs := secApp(t)
	srv := serve(t, h)
	fetch(t, srv.URL, "/raise-in-body?type=GeneratorExit")
	checkBaseline(t)

	for _, kind := range []string{"GeneratorExit", "KeyboardInterrupt", "SystemExit"} {
		status, body, truncated := fetch(t, srv.URL, "/raise-in-body?type="+kind)
		assert.Equal(t, 500, status, kind)
		assert.Equal(t, "500 Internal Server Error\n", body, kind)
		assert.False(t, truncated, kind)
		assert.Contains(t, logs.String(), kind)
		status, body, _ = fetch(t, srv.URL, "/hello")
		assert.Equal(t, 200, status, "host alive after %s", kind)
		assert.Equal(t, "hello", body)
	}
}

// SECURITY.md 30: `while True: pass` past the request timeout: 504 within
// the timeout plus a small margin, and the (only) worker serves the next
// request.
func TestSecuritySpinTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	h, _ := secApp(t, func(o *wsgi.Options) {
		o.Threads = 1
		o.RequestTimeout = timeout
	})
	srv := serve(t, h)
	fetch(t, srv.URL, "/spin")
	require.True(t, waitFor(2*time.Second, func() bool { return h.Stats().Busy == 0 }))
	checkBaseline(t)

	for range 3 {
		start := time.Now()
		status, body, _ := fetch(t, srv.URL, "/spin")
		took := time.Since(start)
		assert.Equal(t, http.StatusGatewayTimeout, status)
		assert.Equal(t, "request timed out\n", body)
		assert.GreaterOrEqual(t, took, timeout)
		assert.Less(t, took, timeout+300*time.Millisecond, "504 on time")
		start = time.Now()
		status, body, _ = fetch(t, srv.URL, "/hello")
		assert.Equal(t, 200, status)
		assert.Equal(t, "hello", body)
		assert.Less(t, time.Since(start), 500*time.Millisecond, "the worker was freed at once")
	}
	assert.True(t, waitFor(time.Second, func() bool { st := h.Stats(); return st.Busy == 0 && st.TimedOut == 0 }))
}

// SECURITY.md 31: requests in flight finish, new ones get 503, Shutdown
// returns once they are done (TestClose has one request; limits_test.go
// TestShutdownWithStuckRequest the stuck case).
func TestSecurityShutdownWithRequestsInFlight(t *testing.T) {
	warm, _ := secApp(t)
	do(warm, "GET", "/sleep?s=0", nil)
	checkBaseline(t)

	h, err := wsgi.New(wsgi.Options{Dir: "testdata/security", App: "app", Threads: 8, // free slots: /hello below never queues
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	var wg sync.WaitGroup
	codes := make([]int, 4)
	for i := range codes {
		wg.Go(func() { codes[i] = do(h, "GET", "/sleep?s=0.5", nil).Code })
	}
	require.True(t, waitFor(time.Second, func() bool { return h.Stats().Busy == 4 }))
	done := make(chan error, 1)
	go func() { done <- h.Shutdown(context.Background()) }()
	require.True(t, waitFor(time.Second, func() bool {
		rec := do(h, "GET", "/hello", nil)
		return rec.Code == 503
	}), "new requests get 503 while shutting down")
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned before the requests in flight finished: %v", err)
	default:
	}
	wg.Wait()
	assert.Equal(t, []int{200, 200, 200, 200}, codes)
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(2 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	assert.NoError(t, h.Close())
}

// SECURITY.md 32: more concurrent requests than Python slots queue as
// goroutines, not OS threads; past the queue timeout they get 503 with
// Retry-After.
func TestSecurityQueueBoundsOSThreads(t *testing.T) {
	const threads = 4
	h, _ := secApp(t, func(o *wsgi.Options) {
		o.Threads = threads
		o.QueueTimeout = 5 * time.Second
	})
	one, _ := secApp(t, func(o *wsgi.Options) {
		o.Threads = 1
		o.QueueTimeout = 50 * time.Millisecond
	})
	burst := func(h http.Handler, n int, path string) map[int]int {
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				rec := do(h, "GET", path, nil)
				mu.Lock()
				defer mu.Unlock()
				codes[rec.Code]++
				if rec.Code == 503 {
					assert.Equal(t, "1", rec.Header().Get("Retry-After"))
				}
			})
		}
		wg.Wait()
		return codes
	}
	burst(h, 2*threads, "/sleep?s=0.01")
	burst(one, 2, "/sleep?s=0.1")
	checkBaseline(t)

	base := osThreads(t)
	limit := base + threads + runtime.GOMAXPROCS(0) + 4
	peak := base
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
				peak = max(peak, osThreads(t))
			}
		}
	}()
	codes := burst(h, 200, "/sleep?s=0.01")
	assert.Equal(t, map[int]int{200: 200}, codes, "they queue and all get served")
	codes = burst(one, 50, "/sleep?s=0.3")
	assert.Equal(t, map[int]int{200: 1, 503: 49}, codes, "past the queue timeout: 503")
	close(stop)
	<-sampled
	assert.LessOrEqual(t, peak, limit, "OS threads: %d at the start, %d at the peak", base, peak)
}

// --- ASGI ---------------------------------------------------------------------

// SECURITY.md 33: receive() returns http.disconnect within a second of
// the disconnect (TestASGIDisconnect allows two).
func TestSecurityASGIDisconnectWithinASecond(t *testing.T) {
	h, _ := asgiRaw(t)
	srv := serve(t, h)
	wait := func() time.Duration {
		var before []string
		getJSON(t, h, "/events", &before)
		resp, err := http.Get(srv.URL + "/wait-disconnect")
		require.NoError(t, err)
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "waiting\n", line)
		start := time.Now()
		resp.Body.Close()
		srv.CloseClientConnections()
		var events []string
		require.True(t, waitFor(2*time.Second, func() bool {
			getJSON(t, h, "/events", &events)
			return len(events) > len(before) && events[len(events)-1] == "received http.disconnect"
		}), "receive() never returned http.disconnect: %v", events)
		return time.Since(start)
	}
	wait()
	checkBaseline(t)
	assert.Less(t, wait(), time.Second)
}

// SECURITY.md 36: ASGI response heads go through the same validator as
// WSGI's: the same verdict for every status and header.
func TestSecurityASGIHeadersSameValidator(t *testing.T) {
	w, _ := newHandler(t, wsgi.Options{Dir: "testdata", App: "failing"})
	a, _ := newHandler(t, wsgi.Options{Dir: "testdata/security", App: "asgi_headers:app", Protocol: "asgi"})
	headers := []struct{ name, value string }{
		{`X-Ok`, `plain`}, {`X-Latin`, `caf\xe9`}, {`X-Tab`, `a\tb`}, {`X-CR`, `a\rb`},
		{`X-LF`, `a\nSet-Cookie: evil=1`}, {`X-NUL`, `a\x00b`}, {`X-DEL`, `a\x7fb`}, {`X-Esc`, `a\x1bb`},
		{`X Space`, `v`}, {`X:Colon`, `v`}, {``, `v`}, {`X-\xe9`, `v`}, {`X(Paren)`, `v`},
		{`Connection`, `close`}, {`keep-alive`, `timeout=5`}, {`Transfer-Encoding`, `chunked`},
		{`Upgrade`, `websocket`}, {`TE`, `trailers`}, {`Trailer`, `X`}, {`Proxy-Authenticate`, `Basic`},
		{`Proxy-Authorization`, `Basic x`}, {`Proxy-Connection`, `keep-alive`},
		{`Content-Length`, `abc`}, {`Content-Length`, `-1`}, {`Content-Length`, `+8`}, {`Content-Length`, `8`},
	}
	statuses := []struct {
		status string
		ok     bool
	}{{"200", true}, {"299", true}, {"999", true}, {"99", false}, {"1000", false}, {"100", false},
		{"101", false}, {"103", false}, {"0", false}, {"-200", false}, {"abc", false}}

	type verdict struct {
		code int
		body string
		hdr  http.Header
	}
	asgiHeader := func(name, value string) verdict {
		rec := do(a, "GET", "/?name="+escape(name)+"&value="+escape(value), nil)
		return verdict{rec.Code, rec.Body.String(), rec.Header()}
	}
	wsgiHeader := func(name, value string) verdict {
		rec := do(w, "GET", "/bad-header?"+escape(name)+"="+escape(value), nil)
		return verdict{rec.Code, rec.Body.String(), rec.Header()}
	}
	asgiStatus := func(status string) verdict {
		rec := do(a, "GET", "/?status="+status, nil)
		return verdict{rec.Code, rec.Body.String(), rec.Header()}
	}
	// Warm-up: every error message and codec once.
	for _, hd := range headers {
		asgiHeader(hd.name, hd.value)
		wsgiHeader(hd.name, hd.value)
	}
	for _, st := range statuses {
		asgiStatus(st.status)
	}
	do(a, "GET", "/?name=X-A&value=b&str=1", nil)
	checkBaseline(t)

	for _, hd := range headers {
		wv, av := wsgiHeader(hd.name, hd.value), asgiHeader(hd.name, hd.value)
		wsgiOK := wv.code == 200 && wv.body == "accepted"
		asgiOK := av.code == 200 && av.body == "accepted"
		assert.Equal(t, wsgiOK, asgiOK, "%s: %s: WSGI %d %q, ASGI %d %q", hd.name, hd.value, wv.code, wv.body, av.code, av.body)
		if !asgiOK {
			assert.True(t, strings.HasPrefix(av.body, "ValueError: wsgi: "), "%s: %s: %s", hd.name, hd.value, av.body)
			assert.Empty(t, av.hdr.Get("X-Cr"))
			assert.Empty(t, av.hdr.Get("Set-Cookie"))
		}
	}
	for _, st := range statuses {
		v := asgiStatus(st.status)
		if st.ok {
			assert.Equal(t, "accepted", v.body, st.status)
			assert.Equal(t, st.status, fmt.Sprint(v.code))
		} else {
			assert.Equal(t, 200, v.code, st.status)
			assert.True(t, strings.HasPrefix(v.body, "ValueError: wsgi: "), "status %s: %s", st.status, v.body)
		}
	}
	// str instead of bytes in ASGI headers: refused, never sent.
	rec := do(a, "GET", "/?name=X-A&value=b&str=1", nil)
	assert.NotEqual(t, "accepted", rec.Body.String())
	assert.Empty(t, rec.Header().Get("X-A"))
}
