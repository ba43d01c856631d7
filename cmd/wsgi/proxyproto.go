package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gowsgi/wsgi/internal/check"
	"github.com/pires/go-proxyproto"
)

// proxyHeaderTimeout bounds the wait for a connection's PROXY header, as
// http.Server's ReadHeaderTimeout bounds the request's headers.
const proxyHeaderTimeout = 10 * time.Second

// proxyProtocol is the -proxy-protocol policy: a PROXY header (v1 or v2,
// parsed by github.com/pires/go-proxyproto) is required from the trusted
// networks and from every peer on a Unix socket (whoever may connect to
// it is decided by its mode and owner), and refused from anyone else: a
// connection that breaks the rule, or sends a malformed header, is
// closed before any request is read. The header's source address becomes
// the connection's RemoteAddr, hence the request's (REMOTE_ADDR, the
// ASGI scope's client); a LOCAL header (a proxy's health check) keeps
// the proxy's own address.
type proxyProtocol struct {
	trusted []netip.Prefix
	logger  *slog.Logger
}

// newProxyProtocol parses the trusted networks (CIDRs or addresses, as
// -trusted-proxies).
func newProxyProtocol(networks []string, logger *slog.Logger) (*proxyProtocol, error) {
	pp := &proxyProtocol{logger: logger}
	for _, s := range networks {
		p, ok := check.Proxy(s)
		if !ok {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR network", strings.TrimSpace(s))
		}
		pp.trusted = append(pp.trusted, p)
	}
	return pp, nil
}

// policy decides, from the peer's address, whether a connection must or
// must not send a header.
func (pp *proxyProtocol) policy(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
	switch a := o.Upstream.(type) {
	case *net.UnixAddr:
		return proxyproto.REQUIRE, nil
	case *net.TCPAddr:
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			ip = ip.Unmap()
			for _, p := range pp.trusted {
				if p.Contains(ip) {
					return proxyproto.REQUIRE, nil
				}
			}
		}
	}
	return proxyproto.REJECT, nil
}

// wrap makes ln read PROXY headers.
func (pp *proxyProtocol) wrap(ln net.Listener) net.Listener {
	return &proxyListener{
		Listener: &proxyproto.Listener{
			Listener:          ln,
			ConnPolicy:        pp.policy,
			ReadHeaderTimeout: proxyHeaderTimeout,
		},
		logger: pp.logger,
	}
}

// proxyListener logs why a connection was refused.
type proxyListener struct {
	*proxyproto.Listener
	logger *slog.Logger
}

func (l *proxyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if pc, ok := c.(*proxyproto.Conn); ok {
		return &proxyConn{Conn: pc, logger: l.logger}, nil
	}
	return c, nil
}

// proxyConn is a connection whose first read fails, and is logged, when
// its PROXY header broke the policy or could not be parsed. http.Server
// then closes it without an answer: nothing can be said to a peer whose
// stream is not HTTP, or not from whom it claims.
type proxyConn struct {
	*proxyproto.Conn
	logger *slog.Logger
	logged atomic.Bool
}

func (c *proxyConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && strings.HasPrefix(err.Error(), "proxyproto:") && !c.logged.Swap(true) {
		c.logRefusal(err)
	}
	return n, err
}

// logRefusal logs a connection closed for its PROXY header: at warn when
// the peer is a trusted proxy (a misconfiguration worth seeing), at debug
// otherwise (anyone can send garbage; it must not flood the log).
func (c *proxyConn) logRefusal(err error) {
	trusted := c.ProxyHeaderPolicy == proxyproto.REQUIRE
	level, msg := slog.LevelDebug, "wsgi: malformed PROXY header; connection closed"
	switch {
	case errors.Is(err, proxyproto.ErrSuperfluousProxyHeader):
		msg = "wsgi: PROXY header from a peer that is not a trusted proxy; connection closed"
	case errors.Is(err, proxyproto.ErrNoProxyProtocol):
		msg = "wsgi: no PROXY header from a trusted proxy; connection closed"
	}
	if trusted {
		level = slog.LevelWarn
	}
	c.logger.Log(context.Background(), level, msg, "peer", c.Raw().RemoteAddr().String(), "err", err)
}

// wrap makes lns read PROXY headers if -proxy-protocol is on.
func (lc *listenConfig) wrap(lns []net.Listener) []net.Listener {
	if lc.proxy == nil {
		return lns
	}
	out := make([]net.Listener, len(lns))
	for i, ln := range lns {
		out[i] = lc.proxy.wrap(ln)
	}
	return out
}
