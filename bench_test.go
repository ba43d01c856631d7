package wsgi_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gowsgi/wsgi"
)

// benchHandler builds a handler for a benchmark and closes it afterwards.
func benchHandler(b *testing.B, opts wsgi.Options) *wsgi.Handler {
	b.Helper()
	h, err := wsgi.New(opts)
	if err != nil {
		b.Fatalf("%+v", err)
	}
	b.Cleanup(func() { _ = h.Close() })
	return h
}

// runBench serves req through h b.N times over a reused recorder.
func runBench(b *testing.B, h http.Handler, newReq func() *http.Request, want int) {
	b.Helper()
	b.ReportAllocs()
	rec := httptest.NewRecorder()
	cpu0 := cpuTime()
	for b.Loop() {
		rec.Body.Reset()
		clear(rec.Header())
		rec.Code = 0
		h.ServeHTTP(rec, newReq())
		if rec.Body.Len() != want {
			b.Fatalf("body length %d, want %d: %q", rec.Body.Len(), want, rec.Body.String())
		}
	}
	// CPU time, which other processes on a shared machine disturb less
	// than the wall time.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

var helloRequest = func() *http.Request { return httptest.NewRequest("GET", "/", nil) }

// BenchmarkHello is the WSGI path for a 13-byte answer; BenchmarkGoHello
// is a Go handler doing the same work. Their difference is what the WSGI
// path costs.
func BenchmarkHello(b *testing.B) {
	h := benchHandler(b, wsgi.Options{Dir: "testdata", App: "hello"})
	runBench(b, h, helloRequest, 13)
}

// goHello is a Go handler that answers as testdata/hello.py does.
var goHello = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", "13")
	_, _ = io.WriteString(w, "Hello, world!")
})

func BenchmarkGoHello(b *testing.B) {
	runBench(b, goHello, helloRequest, 13)
}

// BenchmarkHelloParallel runs hello from GOMAXPROCS goroutines.
func BenchmarkHelloParallel(b *testing.B) {
	h := benchHandler(b, wsgi.Options{Dir: "testdata", App: "hello"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, helloRequest())
		}
	})
}

// BenchmarkHelloHeaders is hello with a browser's 20 request headers.
func BenchmarkHelloHeaders(b *testing.B) {
	h := benchHandler(b, wsgi.Options{Dir: "testdata", App: "hello"})
	runBench(b, h, func() *http.Request {
		r := httptest.NewRequest("GET", "/shop/items?id=42&sort=asc", nil)
		for _, kv := range browserHeaders {
			r.Header.Add(kv[0], kv[1])
		}
		return r
	}, 13)
}

var browserHeaders = [][2]string{
	{"User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"},
	{"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
	{"Accept-Language", "en-US,en;q=0.5"},
	{"Accept-Encoding", "gzip, deflate, br"},
	{"Referer", "https://example.com/shop"},
	{"Connection", "keep-alive"},
	{"Cookie", "session=abc123; theme=dark"},
	{"Upgrade-Insecure-Requests", "1"},
	{"Sec-Fetch-Dest", "document"},
	{"Sec-Fetch-Mode", "navigate"},
	{"Sec-Fetch-Site", "same-origin"},
	{"Sec-Fetch-User", "?1"},
	{"If-None-Match", `"abc"`},
	{"Cache-Control", "max-age=0"},
	{"DNT", "1"},
	{"X-Requested-With", "XMLHttpRequest"},
	{"X-Forwarded-For", "203.0.113.7"},
	{"X-Forwarded-Proto", "https"},
	{"X-Request-Id", "7f1c2d"},
	{"Priority", "u=0, i"},
}

// BenchmarkEcho64K posts 64 KiB that the app reads and returns.
func BenchmarkEcho64K(b *testing.B) {
	h := benchHandler(b, wsgi.Options{Dir: "testdata", App: "behave"})
	body := strings.Repeat("x", 64<<10)
	b.SetBytes(int64(len(body)))
	runBench(b, h, func() *http.Request {
		return httptest.NewRequest("POST", "/echo", strings.NewReader(body))
	}, len(body))
}

// BenchmarkStream100 streams a 100-chunk generator body.
func BenchmarkStream100(b *testing.B) {
	h := benchHandler(b, wsgi.Options{Dir: "testdata", App: "behave"})
	want := 0
	for i := range 100 {
		want += len("chunk ") + len(strings.TrimSpace(strings.Repeat(" ", 0))) + len(itoa(i)) + 1
	}
	runBench(b, h, func() *http.Request { return httptest.NewRequest("GET", "/stream?n=100", nil) }, want)
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// BenchmarkASGIHello is hello through a raw ASGI app on its event loop.
func BenchmarkASGIHello(b *testing.B) {
	h := benchHandler(b, wsgi.Options{Dir: "testdata", App: "asgi_raw:app", Protocol: "asgi"})
	runBench(b, h, func() *http.Request { return httptest.NewRequest("GET", "/hello", nil) }, 13)
}

// BenchmarkASGIHelloParallel runs ASGI hello from GOMAXPROCS goroutines:
// requests overlap on the loop.
func BenchmarkASGIHelloParallel(b *testing.B) {
	h := benchHandler(b, wsgi.Options{Dir: "testdata", App: "asgi_raw:app", Protocol: "asgi"})
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/hello", nil))
		}
	})
}

// BenchmarkHelloClose is BenchmarkHello with a body that has a close():
// the Python part runs on a goroutine of its own, so that the response is
// complete before close() runs (pyrequest.go). Its difference from
// BenchmarkHello is what that costs.
func BenchmarkHelloClose(b *testing.B) {
	h := benchHandler(b, wsgi.Options{Dir: "testdata", App: "post_response"})
	runBench(b, h, func() *http.Request { return httptest.NewRequest("GET", "/hello", nil) }, 13)
}

// BenchmarkHelloHTTP2 is BenchmarkHello as HTTP/2 serves it: each request
// on a new goroutine of its own (net/http starts one per stream), which
// is where a request path that needs more than a new goroutine's stack
// pays for growing it. BenchmarkGoHelloHTTP2 is the Go handler so.
func BenchmarkHelloHTTP2(b *testing.B) {
	h := benchHandler(b, wsgi.Options{Dir: "testdata", App: "hello"})
	runBenchPerGoroutine(b, h)
}

func BenchmarkGoHelloHTTP2(b *testing.B) {
	runBenchPerGoroutine(b, goHello)
}

// runBenchPerGoroutine serves an HTTP/2 hello request through h b.N
// times, each from a new goroutine.
func runBenchPerGoroutine(b *testing.B, h http.Handler) {
	b.Helper()
	b.ReportAllocs()
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	for b.Loop() {
		rec.Body.Reset()
		clear(rec.Header())
		rec.Code = 0
		r := helloRequest()
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
		go func() {
			h.ServeHTTP(rec, r)
			done <- struct{}{}
		}()
		<-done
		if rec.Body.Len() != 13 {
			b.Fatalf("body length %d, want 13: %q", rec.Body.Len(), rec.Body.String())
		}
	}
}

// BenchmarkHelloH2TLS serves hello over real HTTP/2 over TLS on loopback,
// 16 streams at once per GOMAXPROCS on one connection; the client runs in
// the same process. BenchmarkGoHelloH2TLS is the Go handler so: their
// difference is what the WSGI path costs a request under HTTP/2
// (make bench-h2 measures the command against Go with h2load).
func BenchmarkHelloH2TLS(b *testing.B) {
	h := benchHandler(b, wsgi.Options{Dir: "testdata", App: "hello"})
	runBenchH2TLS(b, h)
}

func BenchmarkGoHelloH2TLS(b *testing.B) {
	runBenchH2TLS(b, goHello)
}

func runBenchH2TLS(b *testing.B, h http.Handler) {
	b.Helper()
	srv, client := serveH2(b, h)
	get := func() error {
		resp, err := client.Get(srv.URL + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil && (resp.ProtoMajor != 2 || string(body) != "Hello, world!") {
			err = fmt.Errorf("%s %q", resp.Proto, body)
		}
		return err
	}
	if err := get(); err != nil { // the connection, before the clock starts
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := get(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
