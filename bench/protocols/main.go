// Command protocols measures what the wsgi command's TLS and WebSocket
// compression cost (issue 15), each against its reference in the same
// run:
//
//   - h2: HTTP/2 over TLS, the WSGI hello of bench/apps (13 bytes), with
//     h2load (Debian's nghttp2-client): cmd/wsgi -tls-cert against a Go
//     net/http server doing the same work over TLS with the same
//     certificate. Target: at least 0.8x.
//
//   - ws: WebSocket echo of 1 KiB text messages (JSON-like, compressible)
//     by an ASGI app, each client sending one and waiting for its echo:
//     cmd/wsgi with permessage-deflate negotiated (the default,
//     no-context-takeover) against -ws-compression off. Target: at least
//     0.7x. The clients send messages deflated once and check each echo
//     (wsclient.go says why); -ws-client coder uses coder/websocket,
//     which deflates each message and leaves the server idle part of the
//     time.
//
//     go build -o bin/bench-protocols ./bench/protocols && bin/bench-protocols [-d 5s] [-reps 3] [-workloads h2,ws]
//
// Each server is started afresh for each measurement, pinned to CPU 0
// (taskset -c 0) on a free port of 127.0.0.1; h2load and the WebSocket
// clients run on CPU 1. Repetitions are interleaved and the medians
// reported, in bench/results-protocols.md.
//
// It also serves the Go net/http reference: protocols -serve-go ADDR.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

var (
	flagDur       = flag.Duration("d", 5*time.Second, "duration of each measurement")
	flagWarmup    = flag.Duration("warmup", time.Second, "warm-up before each measurement")
	flagConns     = flag.Int("c", 16, "connections (h2load -c, WebSocket clients)")
	flagStreams   = flag.Int("m", 8, "h2load: concurrent streams per connection")
	flagReps      = flag.Int("reps", 3, "interleaved repetitions (the median is reported)")
	flagWSGI      = flag.String("wsgi", "bin/wsgi", "the cmd/wsgi binary to measure")
	flagApps      = flag.String("apps", "bench/apps", "directory of the Python apps")
	flagOut       = flag.String("out", "bench/results-protocols.md", "markdown results (empty: none)")
	flagWorkloads = flag.String("workloads", "h2,ws", "comma-separated workloads: h2, ws")
	flagServerCPU = flag.String("server-cpu", "0", "CPU list the servers are pinned to")
	flagClientCPU = flag.String("client-cpu", "1", "CPU list h2load and the clients (this program) are pinned to")
	flagServeGo   = flag.String("serve-go", "", "internal: serve the Go net/http reference over TLS on this address")
	flagCert      = flag.String("cert", "", "internal: certificate file of -serve-go")
	flagKey       = flag.String("key", "", "internal: key file of -serve-go")
	flagDriveWS   = flag.String("drive-ws", "", "profiling: run the WebSocket clients against ws://ADDR/ for -d, print the rate and exit")
	flagDriveComp = flag.Bool("drive-ws-compressed", true, "profiling: whether -drive-ws offers and expects permessage-deflate")
	flagWSClient  = flag.String("ws-client", "raw", "WebSocket client: raw (gobwas/ws frames, messages deflated once; see wsclient.go) or coder (coder/websocket, deflating each message)")
)

var hello = []byte("Hello, world!")

func main() {
	flag.Parse()
	if *flagServeGo != "" {
		serveGo(*flagServeGo, *flagCert, *flagKey)
		return
	}
	if _, ok := wsClientText[*flagWSClient]; !ok {
		fmt.Fprintln(os.Stderr, "bench: -ws-client: want raw or coder")
		os.Exit(2)
	}
	if *flagDriveWS != "" {
		rate, err := runWSEcho(*flagDriveWS, *flagDur, *flagDriveComp)
		fmt.Println(rate, err)
		return
	}
	if os.Getenv("BENCH_PINNED") == "" && *flagClientCPU != "" {
		if ts, err := exec.LookPath("taskset"); err == nil {
			if exe, err := os.Executable(); err == nil {
				args := append([]string{"taskset", "-c", *flagClientCPU, exe}, os.Args[1:]...)
				err = syscall.Exec(ts, args, append(os.Environ(), "BENCH_PINNED=1"))
				fmt.Fprintln(os.Stderr, "bench: cannot pin to CPU", *flagClientCPU, err)
			}
		}
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// serveGo is the reference: hello over TLS (HTTP/2 by ALPN), as
// bench/main.go's net/http ceiling answers it.
func serveGo(addr, cert, key string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "13")
		_, _ = w.Write(hello)
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServeTLS(cert, key); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// A measurement is one server configuration of a workload.
type measurement struct {
	name string
	argv func(addr string) []string
	run  func(addr string, d time.Duration) (float64, error)
}

type workload struct {
	key, label, unit string
	target           float64 // minimum ratio of the first measurement to the second
	measure          [2]measurement
}

func run() error {
	tmp, err := os.MkdirTemp("", "bench-protocols")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cert, key, err := selfSigned(tmp)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	apps, err := filepath.Abs(*flagApps)
	if err != nil {
		return err
	}
	wsgiArgs := func(addr string, extra ...string) []string {
		return append([]string{*flagWSGI, "-addr", addr, "-dir", apps, "-log-level", "warn"}, extra...)
	}
	all := []workload{
		{
			key: "h2", label: "HTTP/2 over TLS, WSGI hello (13 B)", unit: "req/s", target: 0.8,
			measure: [2]measurement{
				{"cmd/wsgi -tls-cert", func(addr string) []string {
					return wsgiArgs(addr, "-app", "wsgi_raw:app", "-tls-cert", cert, "-tls-key", key)
				}, h2load},
				{"Go net/http, TLS", func(addr string) []string {
					return []string{exe, "-serve-go", addr, "-cert", cert, "-key", key}
				}, h2load},
			},
		},
		{
			key: "ws", label: "WebSocket echo, 1 KiB text messages (ASGI)", unit: "msg/s", target: 0.7,
			measure: [2]measurement{
				{"permessage-deflate", func(addr string) []string {
					return wsgiArgs(addr, "-app", "ws_echo:app", "-protocol", "asgi")
				}, wsEcho(true)},
				{"-ws-compression off", func(addr string) []string {
					return wsgiArgs(addr, "-app", "ws_echo:app", "-protocol", "asgi", "-ws-compression", "off")
				}, wsEcho(false)},
			},
		},
	}
	var wls []workload
	for _, k := range strings.Split(*flagWorkloads, ",") {
		i := slices.IndexFunc(all, func(w workload) bool { return w.key == k })
		if i < 0 {
			return fmt.Errorf("unknown workload %q", k)
		}
		wls = append(wls, all[i])
	}
	loadStart := loadAverage()
	results := map[string][][]float64{} // workload -> measurement -> reps
	cpu := map[string][][]float64{}     // the same, server CPU µs per operation
	for _, w := range wls {
		results[w.key] = make([][]float64, 2)
		cpu[w.key] = make([][]float64, 2)
	}
	for rep := 1; rep <= *flagReps; rep++ {
		for _, w := range wls {
			for i, m := range w.measure {
				v, us, err := measure(m)
				if err != nil {
					return fmt.Errorf("%s, %s: %w", w.key, m.name, err)
				}
				fmt.Printf("rep %d  %-4s %-22s %10.0f %s  %6.1f µs CPU/op\n", rep, w.key, m.name, v, w.unit, us)
				results[w.key][i] = append(results[w.key][i], v)
				cpu[w.key][i] = append(cpu[w.key][i], us)
			}
		}
	}
	return report(wls, results, cpu, loadStart+" at the start, "+loadAverage()+" at the end")
}

// measure starts m's server, warms it up, measures and stops it. It
// returns the rate and the server's CPU time (user and system) per
// operation in µs, which other load on the machine disturbs less.
func measure(m measurement) (rate, cpuPerOp float64, err error) {
	addr, err := freeAddr()
	if err != nil {
		return 0, 0, err
	}
	argv := append([]string{"taskset", "-c", *flagServerCPU}, m.argv(addr)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	if err := waitListening(addr, 30*time.Second); err != nil {
		return 0, 0, err
	}
	if _, err := m.run(addr, *flagWarmup); err != nil {
		return 0, 0, fmt.Errorf("warm-up: %w", err)
	}
	before, err := cpuTime(cmd.Process.Pid) // taskset execs the server: same pid
	if err != nil {
		return 0, 0, err
	}
	rate, err = m.run(addr, *flagDur)
	if err != nil {
		return 0, 0, err
	}
	after, err := cpuTime(cmd.Process.Pid)
	if err != nil {
		return 0, 0, err
	}
	return rate, (after - before).Seconds() * 1e6 / (rate * flagDur.Seconds()), nil
}

// cpuTime is a process's user and system time, from /proc/PID/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	_, rest, _ := strings.Cut(string(b), ") ") // after the command name, which may hold spaces
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * time.Second / 100, nil // USER_HZ is 100 on Linux
}

var reqPerSec = regexp.MustCompile(`finished in [0-9.]+m?s, ([0-9.]+) req/s`)
var h2Done = regexp.MustCompile(`requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored`)
var h2Status = regexp.MustCompile(`status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)

// h2load runs h2load on https://addr/ for d; it checks the protocol and
// that every request succeeded with a 2xx.
func h2load(addr string, d time.Duration) (float64, error) {
	secs := strconv.Itoa(max(1, int(d.Round(time.Second)/time.Second)))
	out, err := exec.Command("h2load", "-D", secs, "-c", strconv.Itoa(*flagConns), "-m", strconv.Itoa(*flagStreams),
		"-t", "1", "https://"+addr+"/").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("h2load: %v\n%s", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "Application protocol: h2") {
		return 0, fmt.Errorf("h2load did not speak h2:\n%s", s)
	}
	m, st, done := reqPerSec.FindStringSubmatch(s), h2Status.FindStringSubmatch(s), h2Done.FindStringSubmatch(s)
	if m == nil || st == nil || done == nil {
		return 0, fmt.Errorf("unexpected h2load output:\n%s", s)
	}
	if done[3] != "0" || done[4] != "0" || st[2] != "0" || st[3] != "0" || st[4] != "0" || st[1] == "0" {
		return 0, fmt.Errorf("failed requests:\n%s", s)
	}
	return strconv.ParseFloat(m[1], 64)
}

// wsMessage is a 1 KiB JSON-like text message, as chat or live updates
// send: repetitive keys, varying values.
func wsMessage(i int) string {
	var b strings.Builder
	b.WriteString(`{"type":"update","items":[`)
	for j := 0; b.Len() < 1100; j++ {
		if j > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"item-%d","price":%d.%02d,"in_stock":%t}`, i*100+j, j, (i*7+j)%500, j%100, j%3 == 0)
	}
	s := b.String()[:1021]
	return s + `]}` + strings.Repeat(" ", 1024-len(s)-2)
}

// wsEcho runs *flagConns WebSocket clients against ws://addr/ for d, each
// sending a message and waiting for its echo; it returns echoes per
// second. The clients offer permessage-deflate (no context takeover);
// compressed says whether the server must accept it.
func wsEcho(compressed bool) func(addr string, d time.Duration) (float64, error) {
	return func(addr string, d time.Duration) (float64, error) { return runWSEcho(addr, d, compressed) }
}

func runWSEcho(addr string, d time.Duration, compressed bool) (float64, error) {
	if *flagWSClient == "coder" {
		return runWSEchoCoder(addr, d, compressed)
	}
	msgs := make([]string, 64)
	deflated := make([][]byte, len(msgs))
	for i := range msgs {
		msgs[i] = wsMessage(i)
		deflated[i] = deflateMessage(msgs[i])
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	conns := make([]*wsClient, *flagConns)
	for i := range conns {
		c, err := dialWS(ctx, addr)
		if err != nil {
			return 0, err
		}
		defer c.close()
		if c.deflate != compressed {
			return 0, fmt.Errorf("permessage-deflate negotiated: %t, want %t", c.deflate, compressed)
		}
		conns[i] = c
	}
	return driveEcho(d, len(conns), func(i, k int) error {
		return conns[i].echo(msgs[k%len(msgs)], deflated[k%len(msgs)])
	})
}

// driveEcho runs n clients for d, client i calling echo(i, k) for its
// k-th message, and returns echoes per second, or the first error.
func driveEcho(d time.Duration, n int, echo func(i, k int) error) (float64, error) {
	var count atomic.Int64
	var firstErr error
	var once sync.Once
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			for k := i; time.Now().Before(deadline); k++ {
				if err := echo(i, k); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				count.Add(1)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(count.Load()) / time.Since(start).Seconds(), nil
}

var wsClientText = map[string]string{
	"raw":   "sending its messages deflated once, bench/protocols/wsclient.go",
	"coder": "coder/websocket deflating each message",
}

// runWSEchoCoder is runWSEcho with coder/websocket's client, which
// deflates each message it sends.
func runWSEchoCoder(addr string, d time.Duration, compressed bool) (float64, error) {
	msgs := make([]string, 64)
	for i := range msgs {
		msgs[i] = wsMessage(i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	conns := make([]*websocket.Conn, *flagConns)
	for i := range conns {
		c, resp, err := websocket.Dial(ctx, "ws://"+addr+"/", &websocket.DialOptions{CompressionMode: websocket.CompressionNoContextTakeover})
		if err != nil {
			return 0, err
		}
		defer c.CloseNow()
		if got := strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate"); got != compressed {
			return 0, fmt.Errorf("permessage-deflate negotiated: %t, want %t", got, compressed)
		}
		conns[i] = c
	}
	rate, err := driveEcho(d, len(conns), func(i, k int) error {
		m := msgs[k%len(msgs)]
		if err := conns[i].Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			return err
		}
		_, got, err := conns[i].Read(ctx)
		if err == nil && string(got) != m {
			err = errors.New("echo differs from the message sent")
		}
		return err
	})
	for _, c := range conns {
		_ = c.Close(websocket.StatusNormalClosure, "")
	}
	return rate, err
}

func report(wls []workload, results, cpu map[string][][]float64, load string) error {
	var b strings.Builder
	b.WriteString("# TLS, HTTP/2 and WebSocket compression (issue 15)\n\n")
	fmt.Fprintf(&b, "Generated by `make bench-h2` (`bin/bench-protocols %s`) on %s, %s. ",
		strings.Join(os.Args[1:], " "), time.Now().UTC().Format("2006-01-02"), cpuModel())
	fmt.Fprintf(&b, "Each server pinned to CPU %s, the clients (h2load -c%d -m%d -t1; %d WebSocket connections, one message in flight each, %s) on CPU %s; "+
		"%s per measurement after a %s warm-up, median of %d interleaved repetitions. Load average (1 min): %s; "+
		"other jobs on the CPUs lower the rates, the CPU time per operation less so.\n\n",
		*flagServerCPU, *flagConns, *flagStreams, *flagConns, wsClientText[*flagWSClient], *flagClientCPU, *flagDur, *flagWarmup, *flagReps, load)
	b.WriteString("Ratios: the median of each repetition's pair (measured over reference; for CPU, reference over measured), " +
		"each repetition's in parentheses.\n\n")
	b.WriteString("| workload | measured (median) | reference (median) | ratio | target | server CPU per op (measured / reference) |\n|---|---|---|---|---|---|\n")
	failed := false
	for _, w := range wls {
		a, r := median(results[w.key][0]), median(results[w.key][1])
		// The ratio of each repetition's pair, run back to back under the
		// same load, then their median.
		ratio := median(ratios(results[w.key][0], results[w.key][1]))
		verdict := "met"
		if ratio < w.target {
			verdict, failed = "**missed**", true
		}
		ca, cr := median(cpu[w.key][0]), median(cpu[w.key][1])
		fmt.Fprintf(&b, "| %s | %s: %.0f %s | %s: %.0f %s | %.2fx (%s) | >= %.1fx, %s | %.1f / %.1f µs (%.2fx; %s) |\n",
			w.label, w.measure[0].name, a, w.unit, w.measure[1].name, r, w.unit, ratio, list(ratios(results[w.key][0], results[w.key][1])),
			w.target, verdict, ca, cr, median(ratios(cpu[w.key][1], cpu[w.key][0])), list(ratios(cpu[w.key][1], cpu[w.key][0])))
	}
	fmt.Print("\n" + b.String())
	if *flagOut != "" {
		if err := os.WriteFile(*flagOut, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	if failed {
		return errors.New("a target was missed")
	}
	return nil
}

// ratios are a[i]/b[i].
func ratios(a, b []float64) []float64 {
	out := make([]float64, min(len(a), len(b)))
	for i := range out {
		out[i] = a[i] / b[i]
	}
	return out
}

// list formats ratios as "0.81, 0.77".
func list(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(s, ", ")
}

// loadAverage is the 1-minute load average, from /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Fields(string(b))[0]
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitListening(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s after %s", addr, within)
}

// selfSigned writes an ECDSA P-256 certificate for 127.0.0.1 (the kind
// ACME CAs issue) and its key.
func selfSigned(dir string) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
}
