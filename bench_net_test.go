package wsgi_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/gowsgi/wsgi"
)

// runNetBench serves GET path through h over one keep-alive loopback
// connection b.N times, with a raw client that costs next to nothing: the
// difference from runBench is what a real connection adds (net/http's
// conn, its reader and writer, the netpoller).
func runNetBench(b *testing.B, h http.Handler, path string, want int) {
	b.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: bench\r\n\r\n")
	br := bufio.NewReader(c)
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != int64(want) {
			b.Fatalf("body length %d, want %d", n, want)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkNetHello, BenchmarkNetGoHello and BenchmarkNetASGIHello are
// BenchmarkHello, BenchmarkGoHello and BenchmarkASGIHello over a loopback
// connection.
func BenchmarkNetHello(b *testing.B) {
	runNetBench(b, benchHandler(b, wsgi.Options{Dir: "testdata", App: "hello"}), "/", 13)
}

func BenchmarkNetGoHello(b *testing.B) {
	runNetBench(b, goHello, "/", 13)
}

func BenchmarkNetASGIHello(b *testing.B) {
	runNetBench(b, benchHandler(b, wsgi.Options{Dir: "testdata", App: "asgi_raw:app", Protocol: "asgi"}), "/hello", 13)
}

// BenchmarkNetASGIWebSocketEcho sends a 1 KiB JSON-like text message over
// a loopback WebSocket to an ASGI echo and reads the answer, b.N times,
// with permessage-deflate off and on. The client (coder/websocket) runs in
// the process: its work and allocations count too, the same in every run.
func BenchmarkNetASGIWebSocketEcho(b *testing.B) {
	var sb strings.Builder
	for j := 0; sb.Len() < 1024; j++ {
		fmt.Fprintf(&sb, `{"id":%d,"name":"item-%d","price":%d.%02d},`, j, j, j*7%500, j%100)
	}
	msg := []byte(sb.String()[:1024])
	for _, mode := range []string{"off", "no-context-takeover"} {
		b.Run("compression "+mode, func(b *testing.B) {
			h := benchHandler(b, wsgi.Options{Dir: "testdata", App: "asgi_raw:ws_app", Protocol: "asgi", WebSocketCompression: mode})
			srv := httptest.NewServer(h)
			defer srv.Close()
			ctx := context.Background()
			c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/echo",
				&websocket.DialOptions{CompressionMode: websocket.CompressionNoContextTakeover})
			if err != nil {
				b.Fatal(err)
			}
			defer c.CloseNow()
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
					b.Fatal(err)
				}
				typ, data, err := c.Read(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if typ != websocket.MessageText || string(data) != "echo: "+string(msg) {
					b.Fatalf("got %v %q", typ, data)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
