package main

// TLS, HTTP/2 and HTTP/3 for the command: the settings (flags and config
// keys), the certificate pair reloaded from disk, and what serve adds to
// its http.Server. The Handler knows nothing of them. Automatic
// certificates are in acme.go, HTTP/3 in http3.go.

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/gowsgi/wsgi/config"
)

// tlsOptions are the command's TLS, HTTP/2, HTTP/3 and ACME settings.
type tlsOptions struct {
	cert, key    string
	h2c          bool
	http3        bool
	acmeDomains  listFlag
	acmeEmail    string
	acmeDir      string
	acmeCache    string
	acmeHTTPAddr string
}

// listFlag is a flag that may be repeated, each value a comma-separated
// list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	*l = append(*l, splitList(s)...)
	return nil
}

// register adds the flags to fs.
func (o *tlsOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.cert, "tls-cert", "", "serve HTTPS with the certificate chain of this PEM `file` (with -tls-key; HTTP/2 by ALPN); "+
		"the pair is reloaded when the files change")
	fs.StringVar(&o.key, "tls-key", "", "the private key of -tls-cert, a PEM `file`")
	fs.BoolVar(&o.h2c, "h2c", false, "also serve cleartext HTTP/2 with prior knowledge (behind a proxy); without TLS only")
	fs.BoolVar(&o.http3, "http3", false, "also serve HTTP/3 over UDP on the same port, announced by Alt-Svc; needs -tls-cert or -acme-domain")
	fs.Var(&o.acmeDomains, "acme-domain", "get the certificate of this `domain` from an ACME CA (TLS-ALPN-01, and HTTP-01 with -acme-http-addr); "+
		"repeat it or give a comma-separated list; implies the CA's terms of service are accepted")
	fs.StringVar(&o.acmeEmail, "acme-email", "", "contact `address` of the ACME account (default none)")
	fs.StringVar(&o.acmeDir, "acme-dir", "", "ACME directory `URL` (default Let's Encrypt's production, "+acme.LetsEncryptURL+")")
	fs.StringVar(&o.acmeCache, "acme-cache", "", "`directory` keeping the ACME account key and certificates across restarts (default wsgi/acme in the user's cache directory)")
	fs.StringVar(&o.acmeHTTPAddr, "acme-http-addr", "", "`host:port` answering ACME HTTP-01 challenges (port 80 for a real CA) and redirecting other requests for the domains to https (default none: TLS-ALPN-01 only)")
}

// fromConfig takes the file's settings where no flag was given.
func (o *tlsOptions) fromConfig(cfg *config.Config, set map[string]bool) {
	for _, s := range []struct {
		flag string
		dst  *string
		val  string
	}{
		{"tls-cert", &o.cert, cfg.TLSCert}, {"tls-key", &o.key, cfg.TLSKey},
		{"acme-email", &o.acmeEmail, cfg.ACMEEmail}, {"acme-dir", &o.acmeDir, cfg.ACMEDir},
		{"acme-cache", &o.acmeCache, cfg.ACMECache}, {"acme-http-addr", &o.acmeHTTPAddr, cfg.ACMEHTTPAddr},
	} {
		if !set[s.flag] {
			*s.dst = s.val
		}
	}
	if !set["h2c"] {
		o.h2c = cfg.H2C
	}
	if !set["http3"] {
		o.http3 = cfg.HTTP3
	}
	if !set["acme-domain"] {
		o.acmeDomains = cfg.ACMEDomains
	}
}

// tls reports whether the command serves TLS.
func (o *tlsOptions) tls() bool { return o.cert != "" || len(o.acmeDomains) > 0 }

// logAttrs describe the options in the master's startup record (a
// worker's comes from setup).
func (o *tlsOptions) logAttrs() []any {
	var a []any
	if o.tls() {
		a = append(a, "tls", true)
	}
	if o.h2c {
		a = append(a, "h2c", true)
	}
	if o.http3 {
		a = append(a, "http3", true)
	}
	if len(o.acmeDomains) > 0 {
		a = append(a, "acme_domains", acmeDomainNames(o))
	}
	return a
}

// check reports settings that do not go together; names are the flags'.
func (o *tlsOptions) check() error {
	switch {
	case (o.cert == "") != (o.key == ""):
		return errors.New("-tls-cert and -tls-key go together")
	case o.cert != "" && len(o.acmeDomains) > 0:
		return errors.New("-tls-cert and -acme-domain exclude each other: the certificate comes from a file or from the CA")
	case o.h2c && o.tls():
		return errors.New("-h2c is cleartext HTTP/2; with TLS, HTTP/2 is negotiated by ALPN already")
	case o.http3 && !o.tls():
		return errors.New("-http3 needs TLS: set -tls-cert and -tls-key, or -acme-domain")
	case len(o.acmeDomains) == 0 && (o.acmeEmail != "" || o.acmeDir != "" || o.acmeCache != "" || o.acmeHTTPAddr != ""):
		return errors.New("-acme-email, -acme-dir, -acme-cache and -acme-http-addr need -acme-domain")
	}
	if o.acmeHTTPAddr != "" {
		if _, _, err := net.SplitHostPort(o.acmeHTTPAddr); err != nil {
			return fmt.Errorf("-acme-http-addr %q is not host:port", o.acmeHTTPAddr)
		}
	}
	for _, d := range o.acmeDomains {
		if strings.ContainsAny(d, ":/ ") || strings.Trim(d, ".") == "" {
			return fmt.Errorf("-acme-domain %q is not a domain name", d)
		}
	}
	return nil
}

// secure is what the options add to serving: a certificate source, the
// protocols, HTTP/3 and the ACME HTTP-01 listener. A nil *secure serves
// cleartext HTTP/1.1, as before.
type secure struct {
	opts    *tlsOptions
	logger  *slog.Logger
	worker  bool                                                 // in a worker process of a master
	quic    *workerQUIC                                          // in a worker with -http3: the master's UDP sockets
	getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error) // nil: no TLS
	acme    *autocert.Manager                                    // this process talks to the CA (never a worker)
	servers []interface{ Shutdown(context.Context) error }       // HTTP/3, HTTP-01
	wait    []func()                                             // wait for their Serve to return
}

// newSecure checks and loads what the options need before the apps are
// imported: a missing or mismatched key pair is an error here. worker
// says this process is a worker of a master (which talks to the ACME CA
// for every worker). It returns nil when there is nothing to add.
func newSecure(o *tlsOptions, logger *slog.Logger, worker bool) (*secure, error) {
	if !o.tls() && !o.h2c {
		return nil, nil
	}
	s := &secure{opts: o, logger: logger, worker: worker}
	switch {
	case o.cert != "":
		kp, err := loadKeyPairFile(o.cert, o.key, logger)
		if err != nil {
			return nil, err
		}
		s.getCert = kp.GetCertificate
	case len(o.acmeDomains) > 0 && worker:
		s.getCert = cachedACMECertificates(o, logger)
	case len(o.acmeDomains) > 0:
		s.acme = newAutocert(o, logger)
		s.getCert = s.acme.GetCertificate
	}
	return s, nil
}

// setup configures srv, which will serve lns: TLS, the protocols,
// HTTP/3 on the listeners' ports and the ACME HTTP-01 listener. It
// returns attributes for the startup record.
func (s *secure) setup(srv *http.Server, lns []net.Listener) ([]any, error) {
	if s == nil {
		return nil, nil
	}
	var p http.Protocols
	p.SetHTTP1(true)
	var attrs []any
	if s.getCert != nil {
		p.SetHTTP2(true)
		srv.TLSConfig = &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: s.getCert,
		}
		if len(s.opts.acmeDomains) > 0 {
			// TLS-ALPN-01 challenges (a worker answers them from the cache).
			srv.TLSConfig.NextProtos = []string{acme.ALPNProto}
		}
		attrs = append(attrs, "tls", true)
	}
	if s.opts.h2c {
		p.SetUnencryptedHTTP2(true)
		attrs = append(attrs, "h2c", true)
	}
	srv.Protocols = &p
	if s.opts.http3 {
		if err := s.startHTTP3(srv, lns); err != nil {
			return nil, err
		}
		attrs = append(attrs, "http3", true)
	}
	if s.acme != nil {
		if s.opts.acmeHTTPAddr != "" {
			if err := s.startHTTP01(s.acme, lns[0].Addr()); err != nil {
				return nil, err
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		s.wait = append(s.wait, cancel)
		obtainCertificates(ctx, s.acme, s.opts, s.logger)
		attrs = append(attrs, "acme_domains", acmeDomainNames(s.opts))
	}
	return attrs, nil
}

// serve serves ln with srv, over TLS when set up so.
func (s *secure) serve(srv *http.Server, ln net.Listener) error {
	if s == nil || s.getCert == nil {
		return srv.Serve(ln)
	}
	return srv.ServeTLS(ln, "", "") // adds h2 and http/1.1 to NextProtos
}

// shutdown stops srv and the servers setup started, letting requests in
// flight finish until ctx is done; then it closes what is left.
func (s *secure) shutdown(ctx context.Context, srv *http.Server) error {
	if s == nil {
		return srv.Shutdown(ctx)
	}
	errc := make(chan error, len(s.servers))
	for _, o := range s.servers {
		go func() { errc <- o.Shutdown(ctx) }()
	}
	err := srv.Shutdown(ctx)
	for range s.servers {
		if e := <-errc; e != nil && err == nil {
			err = e
		}
	}
	for _, w := range s.wait {
		w()
	}
	return err
}

// keyPairFile is a certificate and key from PEM files, reloaded when
// either file changes (checked at each handshake: two stats). A new pair
// that does not load keeps the previous one, with a warning.
type keyPairFile struct {
	certFile, keyFile string
	logger            *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate // nil until a pair loaded
	stamp   [2]fileStamp     // of the files when last read, whatever came of it
	expired bool             // the expiry of cert was logged
}

// fileStamp tells whether a file changed: a rename over it changes the
// inode, an edit the time or size.
type fileStamp struct {
	ino  uint64
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path) // follows symbolic links, as Kubernetes' secret volumes use
	if err != nil {
		return fileStamp{}, err
	}
	st := fileStamp{mod: fi.ModTime(), size: fi.Size()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st, nil
}

// loadKeyPairFile loads the pair, or says why it cannot.
func loadKeyPairFile(certFile, keyFile string, logger *slog.Logger) (*keyPairFile, error) {
	k := &keyPairFile{certFile: certFile, keyFile: keyFile, logger: logger}
	if err := k.reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// reload reads the files if they changed since last read.
func (k *keyPairFile) reload() error {
	var st [2]fileStamp
	var err error
	for i, f := range []string{k.certFile, k.keyFile} {
		if st[i], err = stampOf(f); err != nil {
			break
		}
	}
	if err == nil && st == k.stamp && k.cert != nil {
		return nil
	}
	changed := st != k.stamp
	k.stamp = st
	if err == nil {
		var cert tls.Certificate
		cert, err = readKeyPair(k.certFile, k.keyFile)
		if err == nil {
			first := k.cert == nil
			k.cert = &cert
			k.expired = logCertificate(k.logger, first, k.certFile, &cert)
			return nil
		}
	}
	err = fmt.Errorf("wsgi: tls: %w", err)
	if k.cert != nil && changed {
		k.logger.Warn("wsgi: tls: new certificate or key refused; serving the previous pair", "cert", k.certFile, "key", k.keyFile, "err", err)
	}
	return err
}

// readKeyPair reads and checks a pair. certFile and keyFile may be the
// same file, holding both (as the ACME cache does).
func readKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM := certPEM
	if keyFile != certFile {
		if keyPEM, err = os.ReadFile(keyFile); err != nil {
			return tls.Certificate{}, err
		}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s and %s: %w", certFile, keyFile, err)
	}
	return cert, nil
}

// GetCertificate is tls.Config's: the current pair.
func (k *keyPairFile) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.reload(); err != nil && k.cert == nil {
		return nil, err
	}
	if !k.expired && k.cert.Leaf != nil && time.Now().After(k.cert.Leaf.NotAfter) {
		k.expired = true // once; a new pair is logged when it loads
		k.logger.Warn("wsgi: tls: the certificate has expired; clients will refuse it", "cert", k.certFile,
			"serial", k.cert.Leaf.SerialNumber.Text(16), "not_after", k.cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return k.cert, nil
}

// logCertificate logs a loaded certificate, with a warning when it is
// not valid now. It reports whether it has expired.
func logCertificate(logger *slog.Logger, first bool, file string, cert *tls.Certificate) (expired bool) {
	leaf := cert.Leaf // set by X509KeyPair
	if leaf == nil {
		return false
	}
	attrs := []any{"cert", file, "subject", leaf.Subject.String(), "dns_names", leaf.DNSNames,
		"serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339)}
	msg := "wsgi: tls: certificate reloaded"
	if first {
		msg = "wsgi: tls: certificate loaded"
	}
	logger.Info(msg, attrs...)
	switch now := time.Now(); {
	case now.After(leaf.NotAfter):
		logger.Warn("wsgi: tls: the certificate has expired; clients will refuse it", attrs...)
		return true
	case now.Before(leaf.NotBefore):
		logger.Warn("wsgi: tls: the certificate is not valid yet", append(attrs, "not_before", leaf.NotBefore.UTC().Format(time.RFC3339))...)
	}
	return false
}
