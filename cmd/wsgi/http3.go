package main

// HTTP/3 through github.com/quic-go/quic-go/http3, on the UDP port of
// each TCP listener, announced by an Alt-Svc header on the TCP responses.
//
// A single process binds its UDP sockets itself. With -workers the master
// binds them and steers each datagram to the worker whose connection it
// belongs to (http3_steer.go); each worker serves the socket it was given,
// issuing connection IDs that name it, and, when it stops, sends GOAWAY
// and finishes its connections while new ones go to the other workers.

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// altSvcMaxAge is how long (seconds) clients may remember the HTTP/3
// endpoint: the 30 days quic-go announces too.
const altSvcMaxAge = 2592000

// quicAcceptQuiet is how long a stopping worker keeps taking the
// connections whose handshakes began before the master steered new ones
// elsewhere: it closes its QUIC listeners once none was accepted for
// this long.
const quicAcceptQuiet = 250 * time.Millisecond

// envWorkerQUIC tells a worker its UDP sockets: "INDEX,N", the index of
// its sockets in their SO_REUSEPORT groups and how many there are (at the
// descriptors after the master's pipe), followed by a pipe holding the
// keys every worker shares.
const envWorkerQUIC = "WSGI_WORKER_QUIC"

// workerQUIC is what a worker inherits for HTTP/3 from its master.
type workerQUIC struct {
	index    int
	conns    []net.PacketConn
	resetKey quic.StatelessResetKey
	tokenKey quic.TokenGeneratorKey
}

// inheritQUIC takes the UDP sockets and keys from descriptor fd on, as
// envWorkerQUIC says; nil without HTTP/3.
func inheritQUIC(fd int) (*workerQUIC, error) {
	s := os.Getenv(envWorkerQUIC)
	if s == "" {
		return nil, nil
	}
	_ = os.Unsetenv(envWorkerQUIC)
	is, ns, _ := strings.Cut(s, ",")
	index, err1 := strconv.Atoi(is)
	n, err2 := strconv.Atoi(ns)
	if err1 != nil || err2 != nil || index < 0 || index >= maxQUICSockets || n < 1 {
		return nil, fmt.Errorf("wsgi: bad %s %q", envWorkerQUIC, s)
	}
	q := &workerQUIC{index: index}
	for i := range n {
		f := os.NewFile(uintptr(fd+i), "quic")
		c, err := net.FilePacketConn(f) // a duplicate
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("wsgi: inherited udp socket %d: %w", fd+i, err)
		}
		q.conns = append(q.conns, c)
	}
	keys := os.NewFile(uintptr(fd+n), "quic keys")
	defer keys.Close()
	var b [quicKeysLen]byte
	if _, err := io.ReadFull(keys, b[:]); err != nil {
		return nil, fmt.Errorf("wsgi: inherited quic keys: %w", err)
	}
	copy(q.resetKey[:], b[:32])
	copy(q.tokenKey[:], b[32:])
	return q, nil
}

// indexedConnIDs issues connection IDs whose first byte is the index of
// the worker's socket, the rest random: the master's program steers on it.
type indexedConnIDs struct{ index byte }

func (g indexedConnIDs) GenerateConnectionID() (quic.ConnectionID, error) {
	var b [quicConnIDLen]byte
	b[0] = g.index
	if _, err := rand.Read(b[1:]); err != nil {
		return quic.ConnectionID{}, err
	}
	return quic.ConnectionIDFromBytes(b[:]), nil
}

func (g indexedConnIDs) ConnectionIDLen() int { return quicConnIDLen }

// startHTTP3 serves srv's handler over HTTP/3 on the ports of lns (on
// the master's sockets in a worker), and makes srv announce it.
func (s *secure) startHTTP3(srv *http.Server, lns []net.Listener) error {
	h := srv.Handler
	h3 := &http3.Server{
		Handler:        h,
		TLSConfig:      http3.ConfigureTLSConfig(&tls.Config{MinVersion: tls.VersionTLS13, GetCertificate: s.getCert}),
		IdleTimeout:    srv.IdleTimeout,
		MaxHeaderBytes: srv.MaxHeaderBytes,
		Logger:         s.logger, // quic-go's records are not prefixed wsgi:, as net/http's ErrorLog lines are not
	}
	for _, ln := range lns {
		if addr, ok := ln.Addr().(*net.TCPAddr); ok {
			h3.Port = addr.Port
			break
		}
	}
	if h3.Port == 0 {
		return errors.New("wsgi: http3: no TCP listener to share a port with")
	}
	var err error
	switch {
	case s.quic != nil:
		err = s.serveQUICWorker(h3)
	case s.worker:
		err = errors.New("wsgi: http3: the master passed no udp socket")
	default:
		err = s.serveQUIC(h3, lns)
	}
	if err != nil {
		return err
	}
	// Alt-Svc (RFC 7838) on every TCP response; quic-go's SetQUICHeaders
	// would miss the first requests, before Serve has registered a
	// listener.
	altSvc := fmt.Sprintf(`%s=":%d"; ma=%d`, http3.NextProtoH3, h3.Port, altSvcMaxAge)
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Alt-Svc"] = []string{altSvc}
		h.ServeHTTP(w, r)
	})
	return nil
}

// serveQUIC binds the UDP twin of each TCP listener and serves it.
func (s *secure) serveQUIC(h3 *http3.Server, lns []net.Listener) error {
	var conns []net.PacketConn
	for _, ln := range lns {
		addr, ok := ln.Addr().(*net.TCPAddr)
		if !ok {
			continue // a Unix socket has no UDP twin
		}
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: addr.IP, Port: addr.Port, Zone: addr.Zone})
		if err != nil {
			for _, c := range conns {
				_ = c.Close()
			}
			return fmt.Errorf("wsgi: http3: %w", err)
		}
		conns = append(conns, conn)
	}
	for _, conn := range conns {
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := h3.Serve(conn); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, quic.ErrServerClosed) {
				s.logger.Error("wsgi: http3: serving failed", "addr", conn.LocalAddr().String(), "err", err)
			}
		}()
		s.wait = append(s.wait, func() { <-done; _ = conn.Close() })
	}
	s.servers = append(s.servers, h3)
	return nil
}

// serveQUICWorker serves the sockets the master gave this worker, with
// connection IDs that name them and the keys every worker shares: a
// stateless reset from any worker ends a connection whose worker is gone,
// and a token one issued is good at another.
func (s *secure) serveQUICWorker(h3 *http3.Server) error {
	ws := &quicWorkerServer{h3: h3, logger: s.logger}
	for _, conn := range s.quic.conns {
		tr := &quic.Transport{
			Conn:                  conn,
			ConnectionIDGenerator: indexedConnIDs{index: byte(s.quic.index)},
			StatelessResetKey:     &s.quic.resetKey,
			TokenGeneratorKey:     &s.quic.tokenKey,
		}
		ln, err := tr.ListenEarly(h3.TLSConfig, &quic.Config{Allow0RTT: true})
		if err != nil {
			_ = tr.Close()
			ws.close()
			return fmt.Errorf("wsgi: http3: %w", err)
		}
		ws.trs = append(ws.trs, tr)
		ws.lns = append(ws.lns, &acceptTimes{EarlyListener: ln, last: &ws.lastAccept})
	}
	for _, ln := range ws.lns {
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := h3.ServeListener(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, quic.ErrServerClosed) {
				s.logger.Error("wsgi: http3: serving failed", "addr", ln.Addr().String(), "err", err)
			}
		}()
		s.wait = append(s.wait, func() { <-done })
	}
	s.wait = append(s.wait, ws.close)
	s.servers = append(s.servers, ws)
	return nil
}

// quicWorkerServer is a worker's HTTP/3 server on its own transports.
type quicWorkerServer struct {
	h3         *http3.Server
	logger     *slog.Logger
	trs        []*quic.Transport
	lns        []*acceptTimes
	lastAccept atomic.Int64 // unix nanoseconds
}

// Shutdown stops taking connections once the handshakes that reached
// this worker before the master steered new ones elsewhere are done,
// sends GOAWAY on each connection, and waits for their requests.
func (ws *quicWorkerServer) Shutdown(ctx context.Context) error {
	ws.waitQuiet(ctx, time.Now())
	for _, ln := range ws.lns {
		_ = ln.Close() // Accept still returns the connections queued; the accepted ones go on
	}
	return ws.h3.Shutdown(ctx)
}

// waitQuiet returns once no connection was accepted for quicAcceptQuiet
// since start, or when ctx is done.
func (ws *quicWorkerServer) waitQuiet(ctx context.Context, start time.Time) {
	for {
		last := max(start.UnixNano(), ws.lastAccept.Load())
		wait := quicAcceptQuiet - time.Duration(time.Now().UnixNano()-last)
		if wait <= 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// close closes the transports (and any connection left) and sockets.
func (ws *quicWorkerServer) close() {
	for _, tr := range ws.trs {
		_ = tr.Close()
		_ = tr.Conn.Close()
	}
}

// acceptTimes records when its listener last accepted a connection.
type acceptTimes struct {
	*quic.EarlyListener
	last *atomic.Int64
}

func (a *acceptTimes) Accept(ctx context.Context) (*quic.Conn, error) {
	c, err := a.EarlyListener.Accept(ctx)
	if err == nil {
		a.last.Store(time.Now().UnixNano())
	}
	return c, err
}
