package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/challtestsrv"
	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/quic-go/quic-go/http3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pebble is Let's Encrypt's test ACME server, run in the test process on
// loopback. Its validation authority resolves every name to 127.0.0.1
// through a DNS server of Pebble's test tools (challtestsrv), and
// connects to the ports given: the challenges are validated for real.
type pebble struct {
	dirURL   string         // the ACME directory
	serverCA string         // PEM file of the ACME server's HTTPS certificate, for SSL_CERT_FILE
	roots    *x509.CertPool // Pebble's root, which signs the certificates it issues
	rootPEM  string         // the same root, a PEM file for curl
	orders   atomic.Int64   // new orders placed
	log      *syncBuffer
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// freeDualPort returns a loopback port that was free a moment ago for
// both UDP and TCP, as a DNS server listens on both: a port only checked
// for UDP was sometimes a TCP one in use by the other tests' connections.
func freeDualPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		port := c.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		_ = c.Close()
		if err == nil {
			_ = ln.Close()
			return port
		}
	}
	t.Fatal("no loopback port free for both UDP and TCP")
	return 0
}

// startPebble starts Pebble, validating HTTP-01 on httpPort and
// TLS-ALPN-01 on tlsPort of 127.0.0.1.
func startPebble(t *testing.T, httpPort, tlsPort int) *pebble {
	t.Helper()
	p := &pebble{log: &syncBuffer{}}
	logger := log.New(p.log, "pebble ", log.LstdFlags)

	dnsAddr := "127.0.0.1:" + strconv.Itoa(freeDualPort(t))
	dns, err := challtestsrv.New(challtestsrv.Config{DNSAddrs: []string{dnsAddr}, Log: logger})
	require.NoError(t, err)
	dns.SetDefaultDNSIPv4("127.0.0.1")
	dns.SetDefaultDNSIPv6("") // A records only: the command listens on 127.0.0.1
	dns.Run()
	t.Cleanup(dns.Shutdown)

	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	validator := va.New(logger, httpPort, tlsPort, false, dnsAddr, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	handler := front.Handler()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			p.orders.Add(1)
		}
		handler.ServeHTTP(w, r)
	}))
	srv.Config.ErrorLog = logger
	srv.StartTLS()
	t.Cleanup(srv.Close)
	p.dirURL = srv.URL + wfe.DirectoryPath
	p.serverCA = filepath.Join(t.TempDir(), "acme-server.pem")
	require.NoError(t, os.WriteFile(p.serverCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
	p.roots = x509.NewCertPool()
	root := authority.GetRootCert(0).Cert
	p.roots.AddCert(root)
	p.rootPEM = filepath.Join(t.TempDir(), "pebble-root.pem")
	require.NoError(t, os.WriteFile(p.rootPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), 0o600))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble log:\n%s", p.log)
		}
	})
	return p
}

// acmeServed connects to 127.0.0.1:port as domain and returns the
// verified certificate's serial number.
func acmeServed(t *testing.T, port int, domain string, roots *x509.CertPool) string {
	t.Helper()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{RootCAs: roots, ServerName: domain}}
	c, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	require.NoError(t, err)
	defer c.Close()
	leaf := c.(*tls.Conn).ConnectionState().PeerCertificates[0]
	assert.Equal(t, []string{domain}, leaf.DNSNames)
	return leaf.SerialNumber.Text(16)
}

// Not parallel: Pebble reads PEBBLE_VA_NOSLEEP (no random wait before a
// validation) from the environment.
func TestACME(t *testing.T) {
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	// No random rejected nonces or reused authorizations: the order count is exact.
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	t.Setenv("PEBBLE_AUTHZREUSE", "0")
	const domain = "app.test"
	for _, tc := range []struct {
		name    string
		workers string
		http01  bool // Pebble validates HTTP-01 only (its TLS-ALPN-01 port is closed)
		file    bool // the settings in a config file, with http3 = true
	}{
		{"tls-alpn-01", "1", false, false},
		{"tls-alpn-01 workers, config file and http3", "2", false, true},
		{"http-01 workers", "2", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port, httpPort := freePort(t), freePort(t)
			alpnPort := port
			if tc.http01 {
				alpnPort = freePort(t) // nothing listens there
			}
			peb := startPebble(t, httpPort, alpnPort)
			cache := t.TempDir()
			args := []string{"-addr", fmt.Sprintf("127.0.0.1:%d", port), "-dir", testdata, "-app", "protocols", "-log-format", "json",
				"-workers", tc.workers, "-acme-domain", domain, "-acme-dir", peb.dirURL, "-acme-cache", cache, "-acme-email", "ops@app.test"}
			if tc.http01 {
				args = append(args, "-acme-http-addr", fmt.Sprintf("127.0.0.1:%d", httpPort))
			}
			if tc.file {
				dir := t.TempDir()
				cfg := filepath.Join(dir, "apps.toml")
				require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`addr = "127.0.0.1:%d"
log_format = "json"
workers = %s
http3 = true
acme_domains = [%q]
acme_dir = %q
acme_cache = "acme"
acme_email = "ops@app.test"

[[app]]
name = "p"
dir = %q
module = "protocols"
`, port, tc.workers, domain, peb.dirURL, testdata)), 0o600))
				args = []string{"-config", cfg}
				cache = filepath.Join(dir, "acme")
			}
			env := []string{"SSL_CERT_FILE=" + peb.serverCA}

			p := start(t, env, args...)
			p.addr(t)
			waitLog(t, p, "wsgi: acme: certificate ready", 20*time.Second)
			assert.Equal(t, int64(1), peb.orders.Load()-btoi(tc.http01), "orders (one failed TLS-ALPN-01 first with http-01)")
			serial := acmeServed(t, port, domain, peb.roots)
			if tc.workers != "1" {
				// Every worker serves it: several connections reach both.
				for range 8 {
					assert.Equal(t, serial, acmeServed(t, port, domain, peb.roots))
				}
			}
			out := curl(t, "--http2", "--cacert", peb.rootPEM, "--resolve", fmt.Sprintf("%s:%d:127.0.0.1", domain, port),
				"-w", "%{http_version}", fmt.Sprintf("https://%s:%d/", domain, port))
			assert.Equal(t, "wsgi https HTTP/2.0\n2", out)
			if tc.file {
				// HTTP/3 with the certificate from the CA, through the cache in each worker.
				tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: peb.roots, ServerName: domain}}
				defer tr.Close()
				resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: tr}).Get(fmt.Sprintf("https://127.0.0.1:%d/", port))
				require.NoError(t, err)
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				require.NoError(t, err)
				assert.Equal(t, "wsgi https HTTP/3.0\n", string(body))
				_, err = os.Stat(filepath.Join(cache, domain))
				assert.NoError(t, err, "the certificate is in the cache the file names")
			}
			if tc.http01 {
				// The challenge port redirects everything else to https.
				out := curl(t, "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H", "Host: "+domain,
					fmt.Sprintf("http://127.0.0.1:%d/x?y=1", httpPort))
				assert.Equal(t, fmt.Sprintf("301 https://%s:%d/x?y=1", domain, port), out)
				out = curl(t, "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: other.test",
					fmt.Sprintf("http://127.0.0.1:%d/x", httpPort))
				assert.Equal(t, "404", out, "a redirect for a host that is not ours")
			}
			assert.Equal(t, 0, p.stop(t), p.stderr())
			orders := peb.orders.Load()

			// A restart serves the certificate from the cache: no new order.
			p = start(t, env, args...)
			p.addr(t)
			waitLog(t, p, "wsgi: acme: certificate ready", 20*time.Second)
			assert.Equal(t, serial, acmeServed(t, port, domain, peb.roots))
			assert.Equal(t, orders, peb.orders.Load(), "a new order after a restart")
			assert.Equal(t, 0, p.stop(t), p.stderr())
		})
	}
}

func btoi(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
