package main

import (
	"bytes"
	bin "encoding/binary"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// v2Signature starts every PROXY protocol v2 header.
var v2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")

// proxyV2 builds a v2 PROXY header by hand (the spec's section 2.2):
// command PROXY over TCP from src to dst.
func proxyV2(src, dst netip.AddrPort) []byte {
	var b bytes.Buffer
	b.Write(v2Signature)
	b.WriteByte(0x21) // version 2, PROXY
	var addrs []byte
	if src.Addr().Is4() {
		b.WriteByte(0x11) // AF_INET, STREAM
		addrs = append(append(addrs, src.Addr().AsSlice()...), dst.Addr().AsSlice()...)
	} else {
		b.WriteByte(0x21) // AF_INET6, STREAM
		addrs = append(append(addrs, src.Addr().AsSlice()...), dst.Addr().AsSlice()...)
	}
	addrs = bin.BigEndian.AppendUint16(addrs, src.Port())
	addrs = bin.BigEndian.AppendUint16(addrs, dst.Port())
	_ = bin.Write(&b, bin.BigEndian, uint16(len(addrs)))
	b.Write(addrs)
	return b.Bytes()
}

// proxyV2Local is a v2 LOCAL header: the proxy speaks for itself (a
// health check); the connection's own address counts.
func proxyV2Local() []byte {
	return append(append([]byte(nil), v2Signature...), 0x20, 0x00, 0x00, 0x00)
}

const request = "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"

// exchange connects to addr (from local, if given) over network, sends
// payload and returns everything the server sends until it closes.
func exchange(t *testing.T, network, addr, local string, payload []byte) string {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial(network, addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = c.Write(payload)
	require.NoError(t, err)
	b, err := io.ReadAll(c)
	if err != nil {
		// A reset after the server closed a connection with unread data.
		require.ErrorContains(t, err, "reset", "the server answers or closes, never hangs")
	}
	return string(b)
}

// body is the body of a raw HTTP/1.1 response, or "" if there is none.
func body(t *testing.T, resp string) string {
	t.Helper()
	if resp == "" {
		return ""
	}
	require.True(t, strings.HasPrefix(resp, "HTTP/1.1 200 OK\r\n"), resp)
	_, b, ok := strings.Cut(resp, "\r\n\r\n")
	require.True(t, ok, resp)
	return b
}

// TestProxyProtocol: raw PROXY headers, v1 and v2, from a trusted proxy
// (127.0.0.2) and from an untrusted peer (127.0.0.1), well-formed and
// not; the client address of an accepted header reaches REMOTE_ADDR and
// the ASGI scope's client; every refused connection is closed without an
// answer, and the server keeps serving.
func TestProxyProtocol(t *testing.T) {
	t.Parallel()
	const trusted, untrusted = "127.0.0.2", "127.0.0.1"
	for _, proto := range []struct{ name, app string }{{"wsgi", "peer:application"}, {"asgi", "peer:app"}} {
		t.Run(proto.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, nil, "-addr", "127.0.0.1:0", "-proxy-protocol", "-trusted-proxies", trusted+"/32",
				"-log-level", "debug", "-dir", testdata, "-app", proto.app, "-protocol", proto.name)
			addr := p.addr(t)
			dst := netip.MustParseAddrPort(addr)
			// client is who the app says the client is: REMOTE_ADDR:REMOTE_PORT or the scope's client.
			client := func(resp string) string {
				a := parsePeer(t, body(t, resp))
				if proto.name == "wsgi" {
					require.NotNil(t, a.RemoteAddr)
					port := ""
					if a.RemotePort != nil {
						port = *a.RemotePort
					}
					return *a.RemoteAddr + " " + port
				}
				c, ok := a.Client.([]any)
				require.True(t, ok, "client %v", a.Client)
				return c[0].(string) + " " + strconv.FormatFloat(c[1].(float64), 'f', -1, 64)
			}
			tests := []struct {
				name, from string
				payload    string
				client     string // "" when the connection must be closed unanswered
				log        string
			}{
				{"v1 from trusted", trusted, "PROXY TCP4 198.51.100.7 " + dst.Addr().String() + " 4711 " + strconv.Itoa(int(dst.Port())) + "\r\n" + request,
					"198.51.100.7 4711", ""},
				{"v1 IPv6 from trusted", trusted, "PROXY TCP6 2001:db8::7 2001:db8::1 4711 443\r\n" + request,
					"2001:db8::7 4711", ""},
				{"v2 from trusted", trusted, string(proxyV2(netip.MustParseAddrPort("198.51.100.8:5000"), dst)) + request,
					"198.51.100.8 5000", ""},
				{"v2 IPv6 from trusted", trusted, string(proxyV2(netip.MustParseAddrPort("[2001:db8::8]:5001"),
					netip.MustParseAddrPort("[2001:db8::1]:443"))) + request, "2001:db8::8 5001", ""},
				{"v2 LOCAL from trusted: the proxy's own address", trusted, string(proxyV2Local()) + request, trusted + " ", ""},
				{"v1 UNKNOWN from trusted: the proxy's own address", trusted, "PROXY UNKNOWN\r\n" + request, trusted + " ", ""},
				{"no header from trusted", trusted, request, "", "level=WARN msg=\"wsgi: no PROXY header from a trusted proxy; connection closed\" peer=" + trusted},
				{"malformed v1 from trusted", trusted, "PROXY TCP4 not-an-address 10.0.0.1 1 2\r\n" + request, "",
					"level=WARN msg=\"wsgi: malformed PROXY header; connection closed\" peer=" + trusted},
				{"v1 without CRLF from trusted", trusted, "PROXY TCP4 198.51.100.7 10.0.0.1 1 2" + strings.Repeat(" ", 120) + request, "",
					"level=WARN msg=\"wsgi: malformed PROXY header; connection closed\" peer=" + trusted},
				{"v2 with a bad length from trusted", trusted, string(append(append([]byte(nil), v2Signature...), 0x21, 0x11, 0x00, 0x02, 1, 2)) + request, "",
					"level=WARN msg=\"wsgi: malformed PROXY header; connection closed\" peer=" + trusted},
				{"v1 from untrusted", untrusted, "PROXY TCP4 198.51.100.7 10.0.0.1 4711 80\r\n" + request, "",
					"level=DEBUG msg=\"wsgi: PROXY header from a peer that is not a trusted proxy; connection closed\" peer=" + untrusted},
				{"v2 from untrusted", untrusted, string(proxyV2(netip.MustParseAddrPort("198.51.100.9:5000"), dst)) + request, "",
					"level=DEBUG msg=\"wsgi: PROXY header from a peer that is not a trusted proxy; connection closed\" peer=" + untrusted},
				{"no header from untrusted", untrusted, request, untrusted + " ", ""},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					logged := strings.Count(p.stderr(), tt.log)
					resp := exchange(t, "tcp", addr, tt.from, []byte(tt.payload))
					if tt.client == "" {
						assert.Empty(t, resp, "closed without an answer")
						require.Eventually(t, func() bool { return strings.Count(p.stderr(), tt.log) > logged }, 5*time.Second, 10*time.Millisecond,
							"no new %q in the log:\n%s", tt.log, p.stderr())
						return
					}
					got := client(resp)
					if strings.HasSuffix(tt.client, " ") {
						// The connection's own address: any port.
						assert.True(t, strings.HasPrefix(got, tt.client), "client %q, want %q", got, tt.client)
						return
					}
					assert.Equal(t, tt.client, got)
				})
			}
			// Still serving; nothing crashed.
			assert.NotEmpty(t, body(t, exchange(t, "tcp", addr, trusted, []byte("PROXY TCP4 198.51.100.7 10.0.0.1 4711 80\r\n"+request))))
			assert.Equal(t, 0, p.stop(t), p.stderr())
			assert.NotContains(t, p.stderr(), "panic")
		})
	}
}

// TestProxyProtocolUnixSocket: a proxy in front over a Unix socket must
// send a header (whoever may connect is decided by the socket's mode).
func TestProxyProtocolUnixSocket(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "proxied.sock")
	p := start(t, nil, "-addr", "unix:"+sock, "-proxy-protocol", "-dir", testdata, "-app", "peer")
	p.addr(t)
	a := parsePeer(t, body(t, exchange(t, "unix", sock, "", []byte("PROXY TCP4 198.51.100.7 10.0.0.1 4711 80\r\n"+request))))
	require.NotNil(t, a.RemoteAddr)
	assert.Equal(t, "198.51.100.7", *a.RemoteAddr)
	require.NotNil(t, a.RemotePort)
	assert.Equal(t, "4711", *a.RemotePort)
	assert.Empty(t, exchange(t, "unix", sock, "", []byte(request)), "no header: closed")
	assert.Equal(t, 0, p.stop(t), p.stderr())
}

// TestProxyProtocolWorkers: workers read the headers on the sockets their
// master passed.
func TestProxyProtocolWorkers(t *testing.T) {
	t.Parallel()
	p := start(t, nil, "-addr", "127.0.0.1:0", "-workers", "2", "-shutdown-timeout", "5s",
		"-proxy-protocol", "-trusted-proxies", "127.0.0.2", "-dir", testdata, "-app", "peer")
	addr := p.addr(t)
	for range 4 {
		a := parsePeer(t, body(t, exchange(t, "tcp", addr, "127.0.0.2", []byte("PROXY TCP4 198.51.100.7 10.0.0.1 4711 80\r\n"+request))))
		require.NotNil(t, a.RemoteAddr)
		assert.Equal(t, "198.51.100.7", *a.RemoteAddr)
		assert.NotEmpty(t, a.Worker)
	}
	assert.Empty(t, exchange(t, "tcp", addr, "127.0.0.1", []byte("PROXY TCP4 198.51.100.7 10.0.0.1 4711 80\r\n"+request)))
	assert.Equal(t, 0, p.stop(t), p.stderr())
}

// TestConfigListeners: the file's addr list, socket_mode, proxy_protocol
// and proxy_protocol_from.
func TestConfigListeners(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "cfg.sock")
	cfg := writeConfig(t, `addr = ["127.0.0.1:0", "unix:`+sock+`"]
socket_mode = "0600"
proxy_protocol = true
proxy_protocol_from = ["127.0.0.2"]

[[app]]
name = "peer"
dir = %[1]q
module = "peer"
`)
	p := start(t, nil, "-config", cfg)
	addrs := servingAddrs(t, p)
	require.Equal(t, []string{addrs[0], "unix:" + sock}, addrs)
	fi, err := os.Lstat(sock)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSocket|0o600, fi.Mode())
	for _, via := range []struct{ network, addr, local string }{{"tcp", addrs[0], "127.0.0.2"}, {"unix", sock, ""}} {
		a := parsePeer(t, body(t, exchange(t, via.network, via.addr, via.local, []byte("PROXY TCP4 198.51.100.7 10.0.0.1 4711 80\r\n"+request))))
		require.NotNil(t, a.RemoteAddr)
		assert.Equal(t, "198.51.100.7", *a.RemoteAddr, via.network)
	}
	assert.Empty(t, exchange(t, "tcp", addrs[0], "127.0.0.1", []byte("PROXY TCP4 198.51.100.7 10.0.0.1 4711 80\r\n"+request)),
		"127.0.0.1 is not in proxy_protocol_from")
	assert.Equal(t, 0, p.stop(t), p.stderr())
}
