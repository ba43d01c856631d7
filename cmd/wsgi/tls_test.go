package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testCA signs certificates for 127.0.0.1 and localhost.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  string // file of the CA certificate, for curl --cacert
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1000),
		Subject:               pkix.Name{CommonName: "wsgi test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	ca := &testCA{cert: cert, key: key, pool: x509.NewCertPool()}
	ca.pool.AddCert(cert)
	ca.pem = filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca.pem, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	return ca
}

// issue writes a certificate with serial number serial, valid from
// notBefore to notAfter, and its key, as cert.pem and key.pem in dir
// (through a rename, as a certificate tool would).
func (ca *testCA) issue(t *testing.T, dir string, serial int64, notBefore, notAfter time.Time) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeRename(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeRename(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	return certFile, keyFile
}

func (ca *testCA) issueValid(t *testing.T, dir string, serial int64) (string, string) {
	return ca.issue(t, dir, serial, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
}

func writeRename(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, data, 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// curl runs curl with args and returns its output (-w's included).
func curl(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "curl", append([]string{"-sS", "--max-time", "8"}, args...)...).CombinedOutput()
	require.NoError(t, err, "curl %s: %s", strings.Join(args, " "), out)
	return string(out)
}

// serverSerial makes a new TLS connection to addr and returns the serial
// number of the server's certificate, verified against roots.
func serverSerial(t *testing.T, addr string, roots *x509.CertPool) (int64, error) {
	t.Helper()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{RootCAs: roots, ServerName: "localhost"}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

func TestTLSAndHTTP2(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	certFile, keyFile := ca.issueValid(t, t.TempDir(), 1)
	for _, tc := range []struct {
		name, kind string
		args       []string
	}{
		{"wsgi", "wsgi", []string{"-app", "protocols"}},
		{"asgi", "asgi", []string{"-app", "protocols:app", "-protocol", "asgi"}},
		{"workers", "wsgi", []string{"-app", "protocols", "-workers", "2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, nil, append([]string{"-addr", "127.0.0.1:0", "-dir", testdata, "-log-format", "json",
				"-tls-cert", certFile, "-tls-key", keyFile}, tc.args...)...)
			addr := p.addr(t)
			url := "https://" + addr + "/"
			for _, v := range []struct{ flag, proto, curl string }{{"--http1.1", "1.1", "1.1"}, {"--http2", "2", "2"}} {
				out := curl(t, v.flag, "--cacert", ca.pem, "-w", "%{http_version}", url)
				body, version, _ := strings.Cut(out, "\n")
				assert.Regexp(t, "^"+tc.kind+" https HTTP/"+v.proto+`(\.0)?$`, body, v.flag)
				assert.Equal(t, v.curl, version, v.flag)
			}
			if tc.kind == "asgi" {
				// WebSockets over TLS: HTTP/1.1, compressed by default.
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				ws, resp, err := websocket.Dial(ctx, "wss://"+addr+"/ws", &websocket.DialOptions{
					HTTPClient:      &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}},
					CompressionMode: websocket.CompressionNoContextTakeover,
				})
				require.NoError(t, err)
				defer ws.CloseNow()
				assert.Contains(t, resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate")
				msg := strings.Repeat("hello over wss ", 100)
				require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(msg)))
				_, got, err := ws.Read(ctx)
				require.NoError(t, err)
				assert.Equal(t, msg, string(got))
				require.NoError(t, ws.Close(websocket.StatusNormalClosure, ""))
			}
			// Cleartext on a TLS port gets Go's 400, not the app.
			out := curl(t, "-w", "%{http_code}", "-o", "/dev/null", "http://"+addr+"/")
			assert.Equal(t, "400", out)
			assert.Equal(t, 0, p.stop(t), p.stderr())
		})
	}
}

func TestH2C(t *testing.T) {
	t.Parallel()
	for _, workers := range []string{"1", "2"} {
		t.Run("workers "+workers, func(t *testing.T) {
			t.Parallel()
			p := start(t, nil, "-addr", "127.0.0.1:0", "-dir", testdata, "-app", "protocols", "-h2c", "-log-format", "json", "-workers", workers)
			url := "http://" + p.addr(t) + "/"
			assert.Contains(t, p.stderr(), `"h2c":true`)
			assert.Equal(t, "wsgi http HTTP/2.0\n2", curl(t, "--http2-prior-knowledge", "-w", "%{http_version}", url))
			assert.Equal(t, "wsgi http HTTP/1.1\n1.1", curl(t, "--http1.1", "-w", "%{http_version}", url))
			// A POST body over h2c.
			assert.Equal(t, "payload", curl(t, "--http2-prior-knowledge", "--data-binary", "payload", url))
			assert.Equal(t, 0, p.stop(t), p.stderr())
		})
	}
}

func TestTLSReload(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.issueValid(t, dir, 1)
	p := start(t, nil, "-addr", "127.0.0.1:0", "-dir", testdata, "-app", "protocols", "-log-format", "json",
		"-tls-cert", certFile, "-tls-key", keyFile)
	addr := p.addr(t)
	serial, err := serverSerial(t, addr, ca.pool)
	require.NoError(t, err)
	assert.Equal(t, int64(1), serial)

	// A keep-alive connection of the old pair keeps serving.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}
	resp, err := client.Get("https://" + addr + "/")
	require.NoError(t, err)
	resp.Body.Close()

	ca.issueValid(t, dir, 2)
	serial, err = serverSerial(t, addr, ca.pool)
	require.NoError(t, err)
	assert.Equal(t, int64(2), serial, "a new handshake sees the new pair")

	// A certificate whose key does not match: the previous pair stays.
	good, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	ca.issueValid(t, dir, 3)
	writeRename(t, keyFile, good) // serial 3's certificate, serial 2's key
	serial, err = serverSerial(t, addr, ca.pool)
	require.NoError(t, err)
	assert.Equal(t, int64(2), serial, "a mismatched pair is refused")
	waitLog(t, p, "wsgi: tls: new certificate or key refused; serving the previous pair", 5*time.Second)
	assert.Contains(t, p.stderr(), "private key does not match public key")

	resp, err = client.Get("https://" + addr + "/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 0, p.stop(t), p.stderr())
}

func TestTLSBadInput(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	certA, keyA := ca.issueValid(t, dirA, 1)
	_, keyB := ca.issueValid(t, dirB, 2)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("not pem\n"), 0o600))
	app := []string{"-addr", "127.0.0.1:0", "-dir", testdata, "-app", "protocols"}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing key file", []string{"-tls-cert", certA, "-tls-key", filepath.Join(dirA, "nope.pem")}, exitFail, "no such file or directory"},
		{"mismatched pair", []string{"-tls-cert", certA, "-tls-key", keyB}, exitFail, "private key does not match public key"},
		{"mismatched pair, workers", []string{"-tls-cert", certA, "-tls-key", keyB, "-workers", "2"}, exitFail, "private key does not match public key"},
		{"not pem", []string{"-tls-cert", garbage, "-tls-key", keyA}, exitFail, "failed to find any PEM data in certificate input"},
		{"cert without key", []string{"-tls-cert", certA}, exitUsage, "-tls-cert and -tls-key go together"},
		{"h2c with tls", []string{"-tls-cert", certA, "-tls-key", keyA, "-h2c"}, exitUsage, "-h2c is cleartext HTTP/2"},
		{"http3 without tls", []string{"-http3"}, exitUsage, "-http3 needs TLS"},
		{"acme and cert", []string{"-tls-cert", certA, "-tls-key", keyA, "-acme-domain", "example.com"}, exitUsage, "exclude each other"},
		{"acme setting without domain", []string{"-acme-email", "a@example.com"}, exitUsage, "need -acme-domain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, _, stderr := runBinary(t, append(app, tc.args...)...)
			assert.Equal(t, tc.code, code, stderr)
			assert.Contains(t, stderr, tc.want)
			assert.NotContains(t, stderr, "wsgi: serving")
		})
	}
}

func TestTLSExpiredCertificateWarns(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	certFile, keyFile := ca.issue(t, t.TempDir(), 7, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	p := start(t, nil, "-addr", "127.0.0.1:0", "-dir", testdata, "-app", "protocols", "-log-format", "json",
		"-tls-cert", certFile, "-tls-key", keyFile)
	addr := p.addr(t)
	assert.Contains(t, p.stderr(), `"level":"WARN","msg":"wsgi: tls: the certificate has expired; clients will refuse it"`)
	_, err := serverSerial(t, addr, ca.pool)
	var verr *tls.CertificateVerificationError
	require.ErrorAs(t, err, &verr, "a verifying client refuses the expired certificate")
	assert.Contains(t, verr.Error(), "expired")
	assert.Equal(t, 0, p.stop(t), p.stderr())
}

func TestTLSConfigFileKeys(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	dir := t.TempDir()
	ca.issueValid(t, dir, 5)
	cfg := filepath.Join(dir, "apps.toml")
	// Relative paths are relative to the file.
	require.NoError(t, os.WriteFile(cfg, []byte(`addr = "127.0.0.1:0"
log_format = "json"
tls_cert = "cert.pem"
tls_key = "key.pem"

[[app]]
name = "p"
dir = "`+testdata+`"
module = "protocols"
`), 0o600))
	p := start(t, nil, "-config", cfg)
	out := curl(t, "--http2", "--cacert", ca.pem, "-w", "%{http_version}", "https://"+p.addr(t)+"/")
	assert.Equal(t, "wsgi https HTTP/2.0\n2", out)
	assert.Equal(t, 0, p.stop(t), p.stderr())

	require.NoError(t, os.WriteFile(cfg, []byte(`addr = "127.0.0.1:0"
tls_cert = "cert.pem"
h2c = true

[[app]]
name = "p"
dir = "`+testdata+`"
module = "protocols"
`), 0o600))
	code, _, stderr := runBinary(t, "-config", cfg)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, stderr, "-tls-cert and -tls-key go together")
}

// A certificate that expires while the server runs is logged once, at
// the first handshake after.
func TestKeyPairFileExpiresWhileServing(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	certFile, keyFile := ca.issue(t, t.TempDir(), 9, time.Now().Add(-time.Hour), time.Now().Add(time.Second))
	var log syncBuffer
	k, err := loadKeyPairFile(certFile, keyFile, slog.New(slog.NewTextHandler(&log, nil)))
	require.NoError(t, err)
	_, err = k.GetCertificate(nil)
	require.NoError(t, err)
	assert.NotContains(t, log.String(), "expired")
	time.Sleep(time.Until(k.cert.Leaf.NotAfter) + 10*time.Millisecond)
	for range 3 {
		cert, err := k.GetCertificate(nil)
		require.NoError(t, err)
		assert.Equal(t, int64(9), cert.Leaf.SerialNumber.Int64(), "still served: the client decides")
	}
	assert.Equal(t, 1, strings.Count(log.String(), "wsgi: tls: the certificate has expired"), log.String())
}

func TestRedirectHTTPS(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		port, method, host, target string
		code                       int
		location                   string
	}{
		{"8443", http.MethodGet, "app.test", "/a?b=c", http.StatusMovedPermanently, "https://app.test:8443/a?b=c"},
		{"443", http.MethodHead, "app.test", "/", http.StatusMovedPermanently, "https://app.test/"},
		{"", http.MethodGet, "app.test", "/", http.StatusMovedPermanently, "https://app.test/"},
		{"443", http.MethodPost, "APP.test.", "/form", http.StatusPermanentRedirect, "https://app.test/form"},
		{"443", http.MethodGet, "evil.test", "/", http.StatusNotFound, ""},
	} {
		t.Run(tc.method+" "+tc.host+" "+tc.port, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, nil)
			r.Host = tc.host
			w := httptest.NewRecorder()
			redirectHTTPS(tc.port, []string{"app.test"}).ServeHTTP(w, r)
			assert.Equal(t, tc.code, w.Code)
			assert.Equal(t, tc.location, w.Header().Get("Location"))
		})
	}
}

// TLS on the other listeners: a unix socket (curl --unix-socket over
// HTTP/2), and a PROXY protocol header before the TLS handshake.
func TestTLSUnixSocketAndProxyProtocol(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.issueValid(t, dir, 1)
	app := []string{"-dir", testdata, "-app", "protocols", "-log-format", "json", "-tls-cert", certFile, "-tls-key", keyFile}

	sock := filepath.Join(dir, "wsgi.sock")
	p := start(t, nil, append([]string{"-addr", "unix:" + sock}, app...)...)
	p.addr(t)
	out := curl(t, "--http2", "--cacert", ca.pem, "--unix-socket", sock, "-w", "%{http_version}", "https://localhost/")
	assert.Equal(t, "wsgi https HTTP/2.0\n2", out)
	assert.Equal(t, 0, p.stop(t), p.stderr())

	// The PROXY header comes first, in cleartext; TLS follows on the same connection.
	p = start(t, nil, append([]string{"-addr", "127.0.0.1:0", "-proxy-protocol", "-trusted-proxies", "127.0.0.1/32"}, app...)...)
	conn, err := net.DialTimeout("tcp", p.addr(t), 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n"))
	require.NoError(t, err)
	tc := tls.Client(conn, &tls.Config{RootCAs: ca.pool, ServerName: "localhost", NextProtos: []string{"http/1.1"}})
	require.NoError(t, tc.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = tc.Write([]byte("GET /remote HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, "203.0.113.7 https\n", string(body))
	assert.Equal(t, 0, p.stop(t), p.stderr())
}
