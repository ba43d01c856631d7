package wsgi

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTrustedProxies(t *testing.T) {
	trusted, err := parseTrustedProxies([]string{"10.0.0.0/8", "192.0.2.1", "::1"})
	require.NoError(t, err)
	tests := []struct {
		name    string
		remote  string
		headers map[string]string
		addr    string
		port    string
		https   bool
	}{
		{"direct, no headers", "203.0.113.9:5555", nil, "203.0.113.9", "5555", false},
		{"untrusted peer ignored", "203.0.113.9:5555",
			map[string]string{"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https"}, "203.0.113.9", "5555", false},
		{"trusted peer: XFF", "10.1.2.3:40000",
			map[string]string{"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https"}, "1.2.3.4", "", true},
		{"spoofed leftmost skipped", "10.1.2.3:40000",
			map[string]string{"X-Forwarded-For": "6.6.6.6, 1.2.3.4, 10.9.9.9"}, "1.2.3.4", "", false},
		{"all trusted: leftmost", "10.1.2.3:40000",
			map[string]string{"X-Forwarded-For": "10.0.0.5, 10.0.0.6"}, "10.0.0.5", "", false},
		{"garbage hop: unchanged", "10.1.2.3:40000",
			map[string]string{"X-Forwarded-For": "1.2.3.4, not-an-ip"}, "10.1.2.3", "40000", false},
		{"single trusted address", "192.0.2.1:1234",
			map[string]string{"X-Forwarded-For": "198.51.100.7"}, "198.51.100.7", "", false},
		{"IPv6 proxy", "[::1]:1234",
			map[string]string{"X-Forwarded-For": "2001:db8::7"}, "2001:db8::7", "", false},
		{"Forwarded", "10.1.2.3:40000",
			map[string]string{"Forwarded": `for=198.51.100.17;proto=https, for="[2001:db8::1]:4711"`}, "2001:db8::1", "", false},
		{"Forwarded first wins over XFF", "10.1.2.3:40000",
			map[string]string{"Forwarded": "for=198.51.100.17;proto=https", "X-Forwarded-For": "6.6.6.6"}, "198.51.100.17", "", true},
		{"Forwarded unknown: unchanged", "10.1.2.3:40000",
			map[string]string{"Forwarded": "for=unknown"}, "10.1.2.3", "40000", false},
		{"proto from the nearest proxy", "10.1.2.3:40000",
			map[string]string{"X-Forwarded-Proto": "http, https"}, "10.1.2.3", "40000", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			p := trusted.peer(r)
			assert.Equal(t, tt.addr, p.addr)
			assert.Equal(t, tt.port, p.port)
			assert.Equal(t, tt.https, p.https)

			var e environ
			status, _ := buildEnvironFor(&e, r, "", nil, p)
			require.Zero(t, status)
			m := decodeEnviron(t, e.bytes())
			assert.Equal(t, tt.addr, m["REMOTE_ADDR"])
			if tt.https {
				assert.Equal(t, "https", m["wsgi.url_scheme"])
				assert.Equal(t, "on", m["HTTPS"])
			}
		})
	}
	_, err = parseTrustedProxies([]string{"nonsense"})
	assert.Error(t, err)
	var none trustedProxies
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Forwarded-For", "1.2.3.4")
	assert.Equal(t, "192.0.2.1", none.peer(r).addr, "no trusted proxies: headers change nothing")
}

// A client on a Unix socket has no address: REMOTE_ADDR is empty (as
// under gunicorn) and there is no port, whatever net/http put in
// RemoteAddr; a PROXY header's TCP address (set by the listener) counts.
func TestUnixSocketPeer(t *testing.T) {
	sock := &net.UnixAddr{Name: "/run/wsgi.sock", Net: "unix"}
	tests := []struct {
		name, remote string
		local        net.Addr
		addr, port   string
	}{
		{"unnamed client", "@", sock, "", ""},
		{"bound client", "/tmp/client.sock", sock, "", ""},
		{"empty", "", sock, "", ""},
		{"PROXY header over the socket", "198.51.100.7:4711", sock, "198.51.100.7", "4711"},
		{"tcp without port (set by middleware)", "198.51.100.7", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}, "198.51.100.7", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, tt.local))
			r.RemoteAddr = tt.remote
			p := directPeer(r)
			assert.Equal(t, tt.addr, p.addr)
			assert.Equal(t, tt.port, p.port)
		})
	}
}

// "unix" in TrustedProxies trusts the forwarding headers of every peer on
// a Unix socket, and of no TCP peer.
func TestTrustedUnixPeers(t *testing.T) {
	sock := &net.UnixAddr{Name: "/run/wsgi.sock", Net: "unix"}
	tcp := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
	tests := []struct {
		name    string
		trusted []string
		local   net.Addr
		remote  string
		addr    string
		https   bool
	}{
		{"unix peer, unix trusted", []string{"unix"}, sock, "@", "198.51.100.9", true},
		{"unix peer, networks only", []string{"127.0.0.1"}, sock, "@", "", false},
		{"tcp peer, unix trusted only", []string{"unix"}, tcp, "127.0.0.1:5555", "127.0.0.1", false},
		{"tcp peer, both", []string{"unix", "127.0.0.1"}, tcp, "127.0.0.1:5555", "198.51.100.9", true},
		{"PROXY client over the socket is no proxy", []string{"unix"}, sock, "203.0.113.5:4711", "203.0.113.5", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trusted, err := parseTrustedProxies(tt.trusted)
			require.NoError(t, err)
			r := httptest.NewRequest("GET", "/", nil)
			r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, tt.local))
			r.RemoteAddr = tt.remote
			r.Header.Set("X-Forwarded-For", "198.51.100.9")
			r.Header.Set("X-Forwarded-Proto", "https")
			p := trusted.peer(r)
			assert.Equal(t, tt.addr, p.addr)
			assert.Equal(t, tt.https, p.https)
		})
	}
}
