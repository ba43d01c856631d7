package main

// HTTP/3 through github.com/quic-go/quic-go/http3, on the UDP port of
// each TCP listener, announced by an Alt-Svc header on the TCP responses.
//
// With -workers each worker binds its own UDP socket on the port with
// SO_REUSEPORT, and the kernel spreads the clients over them by their
// address (a UDP socket passed from the master, read by every worker,
// would hand the packets of one QUIC connection to several processes).
// While a worker is being replaced, the group of sockets changes and some
// connections reach a process that does not know them: their clients
// start a new connection, or fall back to TCP.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/sys/unix"
)

// altSvcMaxAge is how long (seconds) clients may remember the HTTP/3
// endpoint: the 30 days quic-go announces too.
const altSvcMaxAge = 2592000

// startHTTP3 serves srv's handler over HTTP/3 on the ports of lns, and
// makes srv announce it.
func (s *secure) startHTTP3(srv *http.Server, lns []net.Listener) error {
	h := srv.Handler
	h3 := &http3.Server{
		Handler:        h,
		TLSConfig:      http3.ConfigureTLSConfig(&tls.Config{MinVersion: tls.VersionTLS13, GetCertificate: s.getCert}),
		IdleTimeout:    srv.IdleTimeout,
		MaxHeaderBytes: srv.MaxHeaderBytes,
		Logger:         s.logger, // quic-go's records are not prefixed wsgi:, as net/http's ErrorLog lines are not
	}
	var conns []net.PacketConn
	for _, ln := range lns {
		addr, ok := ln.Addr().(*net.TCPAddr)
		if !ok {
			continue // a Unix socket has no UDP twin
		}
		conn, err := listenUDP(addr, s.worker)
		if err != nil {
			for _, c := range conns {
				_ = c.Close()
			}
			return fmt.Errorf("wsgi: http3: %w", err)
		}
		conns = append(conns, conn)
		if h3.Port == 0 {
			h3.Port = addr.Port
		}
	}
	if len(conns) == 0 {
		return errors.New("wsgi: http3: no TCP listener to share a port with")
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
	// Alt-Svc (RFC 7838) on every TCP response; quic-go's SetQUICHeaders
	// would miss the first requests, before Serve has registered a
	// listener.
	altSvc := fmt.Sprintf(`%s=":%d"; ma=%d`, http3.NextProtoH3, h3.Port, altSvcMaxAge)
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Alt-Svc"] = []string{altSvc}
		h.ServeHTTP(w, r)
	})
	s.servers = append(s.servers, h3)
	return nil
}

// listenUDP binds the UDP twin of a TCP listener's address; in a worker
// with SO_REUSEPORT, as every worker binds it.
func listenUDP(addr *net.TCPAddr, reusePort bool) (net.PacketConn, error) {
	var lc net.ListenConfig
	if reusePort {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	return lc.ListenPacket(context.Background(), "udp", (&net.UDPAddr{IP: addr.IP, Port: addr.Port, Zone: addr.Zone}).String())
}
