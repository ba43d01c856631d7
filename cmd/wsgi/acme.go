package main

// Automatic certificates through golang.org/x/crypto/acme/autocert.
//
// One process talks to the ACME CA: the command itself, or with -workers
// the master (which imports no Python and accepts no connections). It
// orders each domain's certificate at start, autocert renews it before it
// expires, and the cache directory (autocert.DirCache) keeps the account
// key, the certificates and the challenge tokens. Workers never order:
// they serve the certificate the master wrote in the cache (reloaded when
// the file changes, as -tls-cert is), and answer TLS-ALPN-01 challenges
// with the token certificate the master put in the cache, which is what
// autocert's cache is for (several instances sharing one). The HTTP-01
// listener (-acme-http-addr) runs in the ACME process, whose memory holds
// the tokens.

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// acmeCacheDir is -acme-cache, or its default.
func acmeCacheDir(o *tlsOptions) string {
	if o.acmeCache != "" {
		return o.acmeCache
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "wsgi", "acme")
	}
	return filepath.Join(os.TempDir(), "wsgi-acme")
}

// acmeDomainNames are the domains as TLS server names: lower case,
// without a final dot.
func acmeDomainNames(o *tlsOptions) []string {
	names := make([]string, len(o.acmeDomains))
	for i, d := range o.acmeDomains {
		names[i] = strings.ToLower(strings.TrimSuffix(d, "."))
	}
	return names
}

// newAutocert is the ACME client of this process.
func newAutocert(o *tlsOptions, logger *slog.Logger) *autocert.Manager {
	dir := o.acmeDir
	if dir == "" {
		dir = autocert.DefaultACMEDirectory
	}
	return &autocert.Manager{
		Prompt:     autocert.AcceptTOS, // -acme-domain says so; see its help
		Cache:      autocert.DirCache(acmeCacheDir(o)),
		HostPolicy: autocert.HostWhitelist(acmeDomainNames(o)...),
		Email:      o.acmeEmail,
		Client:     &acme.Client{DirectoryURL: dir, UserAgent: "gowsgi"},
	}
}

// ecdsaHello is a ClientHello for which autocert picks (orders, loads)
// the domain's ECDSA certificate, the one every current client takes.
func ecdsaHello(domain string) *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{
		ServerName:       domain,
		SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		SupportedCurves:  []tls.CurveID{tls.CurveP256},
		CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
	}
}

// obtainCertificates gets each domain's certificate from the cache or the
// CA, retrying with a growing delay until ctx is done. Once loaded,
// autocert renews it in this process.
func obtainCertificates(ctx context.Context, m *autocert.Manager, o *tlsOptions, logger *slog.Logger) {
	for _, d := range acmeDomainNames(o) {
		go func() {
			delay := time.Second
			for {
				cert, err := m.GetCertificate(ecdsaHello(d))
				if err == nil {
					attrs := []any{"domain", d}
					if cert.Leaf != nil {
						attrs = append(attrs, "serial", cert.Leaf.SerialNumber.Text(16),
							"not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
					}
					logger.Info("wsgi: acme: certificate ready", attrs...)
					return
				}
				logger.Warn("wsgi: acme: cannot get a certificate; retrying", "domain", d, "err", err, "in", delay)
				select {
				case <-ctx.Done():
					return
				case <-time.After(delay):
				}
				delay = min(2*delay, 10*time.Minute)
			}
		}()
	}
}

// cachedACMECertificates serves, in a worker, the certificates the master
// keeps in the cache directory, and the TLS-ALPN-01 token certificates it
// puts there.
func cachedACMECertificates(o *tlsOptions, logger *slog.Logger) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	dir := acmeCacheDir(o)
	names := acmeDomainNames(o)
	// For token certificates only: for them autocert reads the cache and
	// never calls the CA (it has no Client here anyway).
	tokens := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(dir),
		HostPolicy: autocert.HostWhitelist(names...),
	}
	pairs := map[string]*keyPairFile{}
	for _, d := range names {
		f := filepath.Join(dir, d) // autocert's cache key of the ECDSA certificate: key and chain in one PEM file
		pairs[d] = &keyPairFile{certFile: f, keyFile: f, logger: logger}
	}
	return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acme.ALPNProto {
			return tokens.GetCertificate(hello)
		}
		name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
		if name == "" && len(names) == 1 {
			name = names[0]
		}
		k := pairs[name]
		if k == nil {
			return nil, fmt.Errorf("wsgi: acme: no certificate for server name %q", hello.ServerName)
		}
		cert, err := k.GetCertificate(hello)
		if err != nil {
			return nil, fmt.Errorf("wsgi: acme: no certificate for %q in %s yet (the master gets it): %w", name, dir, err)
		}
		return cert, nil
	}
}

// serveHTTP01 listens on addr for HTTP-01 challenges; every other request
// is redirected to https on tlsAddr's port.
func serveHTTP01(m *autocert.Manager, o *tlsOptions, tlsAddr net.Addr, logger *slog.Logger) (*http.Server, func(), error) {
	ln, err := net.Listen("tcp", o.acmeHTTPAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("wsgi: acme http-01 listener: %w", err)
	}
	_, port, _ := net.SplitHostPort(tlsAddr.String())
	challenges := m.HTTPHandler(redirectHTTPS(port, acmeDomainNames(o)))
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// autocert checks Host against the domains as it is; a client
			// may name the port ("example.com:80", and a CA testing on
			// another port does).
			if h, _, err := net.SplitHostPort(r.Host); err == nil {
				r.Host = h
			}
			challenges.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       30 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != http.ErrServerClosed {
			logger.Error("wsgi: acme http-01 listener failed", "err", err)
		}
	}()
	logger.Info("wsgi: acme: answering http-01 challenges", "addr", ln.Addr().String())
	return srv, func() { <-done }, nil
}

// startHTTP01 starts the HTTP-01 listener of this process.
func (s *secure) startHTTP01(m *autocert.Manager, tlsAddr net.Addr) error {
	srv, wait, err := serveHTTP01(m, s.opts, tlsAddr, s.logger)
	if err != nil {
		return err
	}
	s.servers = append(s.servers, srv)
	s.wait = append(s.wait, wait)
	return nil
}

// redirectHTTPS redirects a request for one of domains to the same host
// and path over https, on port tlsPort: 301 for GET and HEAD, 308 (the
// method kept) for the others. Other hosts get 404.
func redirectHTTPS(tlsPort string, domains []string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := strings.ToLower(strings.TrimSuffix(r.Host, ".")) // the port is gone already
		if !slices.Contains(domains, host) {
			http.NotFound(w, r)
			return
		}
		if tlsPort != "443" && tlsPort != "" { // "": a listener without a port, a Unix socket behind a proxy
			host = net.JoinHostPort(host, tlsPort)
		}
		code := http.StatusPermanentRedirect
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			code = http.StatusMovedPermanently
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), code)
	})
}

// masterTLS is the master's part: it checks the key pair once (a missing
// or mismatched pair stops the command before any worker starts) and,
// with -acme-domain, is the ACME client of every worker. tlsAddr is the
// listening socket's address. stop ends what it started.
func masterTLS(ctx context.Context, logger *slog.Logger, o *tlsOptions, tlsAddr net.Addr) (stop func(), err error) {
	if o.cert != "" {
		if _, err := readKeyPair(o.cert, o.key); err != nil {
			return nil, fmt.Errorf("wsgi: tls: %w", err)
		}
	}
	if len(o.acmeDomains) == 0 {
		return func() {}, nil
	}
	m := newAutocert(o, logger)
	ctx, cancel := context.WithCancel(ctx)
	var srv *http.Server
	var wait func()
	if o.acmeHTTPAddr != "" {
		if srv, wait, err = serveHTTP01(m, o, tlsAddr, logger); err != nil {
			cancel()
			return nil, err
		}
	}
	obtainCertificates(ctx, m, o, logger)
	return func() {
		cancel()
		if srv != nil {
			_ = srv.Close()
			wait()
		}
	}, nil
}
