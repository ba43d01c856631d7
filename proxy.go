package wsgi

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/gowsgi/wsgi/internal/check"
)

// peer is who the app is told the client is.
type peer struct {
	addr  string // REMOTE_ADDR
	port  string // REMOTE_PORT; "" when unknown (a forwarded client)
	https bool
}

// directPeer is the connection's own peer. A client on a Unix socket has
// no address (net/http's RemoteAddr is "@" or the client socket's path):
// REMOTE_ADDR is then empty and REMOTE_PORT absent, as under gunicorn,
// and the ASGI scope has no client, as under uvicorn.
func directPeer(r *http.Request) peer {
	p := peer{https: r.TLS != nil}
	ra := r.RemoteAddr
	if ra != "" && (ra[0] == '@' || ra[0] == '/') {
		return p // a Unix socket's peer
	}
	if host, port, err := net.SplitHostPort(ra); err == nil {
		p.addr, p.port = host, port
	} else if _, unix := unixSocket(r); !unix {
		p.addr = ra
	}
	return p
}

// unixSocket returns the path of the Unix socket r came in on, if it
// did (a PROXY header may have replaced the local address with a TCP
// one: then not).
func unixSocket(r *http.Request) (string, bool) {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(*net.UnixAddr)
	if !ok {
		return "", false
	}
	return a.Name, true
}

// trustedProxies are the networks whose forwarding headers are believed.
type trustedProxies []netip.Prefix

// parseTrustedProxies reads CIDRs ("10.0.0.0/8"), single addresses and
// "unix" (check.Proxy).
func parseTrustedProxies(list []string) (trustedProxies, error) {
	var t trustedProxies
	for _, s := range list {
		p, ok := check.Proxy(s)
		if !ok {
			return nil, fmt.Errorf("wsgi: TrustedProxies: %q is neither an address nor a CIDR network", strings.TrimSpace(s))
		}
		t = append(t, p)
	}
	return t, nil
}

// trustsUnix reports whether "unix" is in the list: every peer on a Unix
// socket is a trusted proxy.
func (t trustedProxies) trustsUnix() bool {
	for _, p := range t {
		if !p.IsValid() {
			return true
		}
	}
	return false
}

func (t trustedProxies) trusts(addr string) bool {
	a, err := netip.ParseAddr(strings.Trim(addr, "[]"))
	if err != nil {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peer returns the client as the app should see it: the connection's
// peer, unless that peer is a trusted proxy, in which case the Forwarded
// header (RFC 7239), or else X-Forwarded-For and X-Forwarded-Proto, say
// who the client is. The client is the rightmost address that is not a
// trusted proxy, so a client cannot inject an address by sending the
// header itself.
func (t trustedProxies) peer(r *http.Request) peer {
	p := directPeer(r)
	if len(t) == 0 {
		return p
	}
	if !t.trusts(p.addr) {
		if _, unix := unixSocket(r); !unix || p.addr != "" || !t.trustsUnix() {
			return p
		}
	}
	if fwd := r.Header.Values("Forwarded"); len(fwd) > 0 {
		if client, proto, ok := t.fromForwarded(fwd); ok {
			p.addr, p.port = client, ""
			if proto != "" {
				p.https = strings.EqualFold(proto, "https")
			}
		}
		return p
	}
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		var hops []string
		for _, v := range xff {
			for _, h := range strings.Split(v, ",") {
				hops = append(hops, strings.TrimSpace(h))
			}
		}
		if client := t.rightmostUntrusted(hops); client != "" {
			p.addr, p.port = client, ""
		}
	}
	if proto := r.Header.Get("X-Forwarded-Proto"); proto != "" {
		// Several proxies may each have added one: the last is nearest.
		parts := strings.Split(proto, ",")
		p.https = strings.EqualFold(strings.TrimSpace(parts[len(parts)-1]), "https")
	}
	return p
}

// rightmostUntrusted walks the hops from the nearest proxy outwards and
// returns the first that is not a trusted proxy (the leftmost if all are);
// "" if a hop is not an address.
func (t trustedProxies) rightmostUntrusted(hops []string) string {
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			return ""
		}
		if i == 0 || !t.trusts(hops[i]) {
			return a.Unmap().String()
		}
	}
	return ""
}

// fromForwarded parses Forwarded elements ("for=1.2.3.4;proto=https,
// for=..."), returning the client (rightmost untrusted for=) and the proto
// of that element.
func (t trustedProxies) fromForwarded(values []string) (client, proto string, ok bool) {
	type elem struct{ forAddr, proto string }
	var elems []elem
	for _, v := range values {
		for _, e := range strings.Split(v, ",") {
			var el elem
			for _, pair := range strings.Split(e, ";") {
				k, val, found := strings.Cut(strings.TrimSpace(pair), "=")
				if !found {
					continue
				}
				val = strings.Trim(val, `"`)
				switch strings.ToLower(k) {
				case "for":
					el.forAddr = forwardedAddr(val)
				case "proto":
					el.proto = val
				}
			}
			elems = append(elems, el)
		}
	}
	for i := len(elems) - 1; i >= 0; i-- {
		el := elems[i]
		if el.forAddr == "" {
			return "", "", false // "unknown", obfuscated or malformed: stop here
		}
		if i == 0 || !t.trusts(el.forAddr) {
			return el.forAddr, el.proto, true
		}
	}
	return "", "", false
}

// forwardedAddr extracts the address of a Forwarded for= value:
// "1.2.3.4", "1.2.3.4:80", "[2001:db8::1]" or "[2001:db8::1]:80".
func forwardedAddr(v string) string {
	if strings.HasPrefix(v, "[") {
		end := strings.IndexByte(v, ']')
		if end < 0 {
			return ""
		}
		v = v[1:end]
	} else if host, _, err := net.SplitHostPort(v); err == nil {
		v = host
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return ""
	}
	return a.Unmap().String()
}
