// Package config serves several WSGI apps from one process, described by a
// TOML file or by the same settings built as a Go struct.
//
// # The file
//
// One [[app]] table per app; the top-level keys set the server. Every key
// is snake_case; a key the package does not know is an error, as is a value
// of the wrong type. Durations are strings as time.ParseDuration reads
// them ("30s", "1m"). Relative paths (dir, log_file, python_path,
// virtualenv, auth.htpasswd, a unix: addr, tls_cert, tls_key, acme_cache)
// are relative to the directory that holds the file.
//
//	addr = "127.0.0.1:8080"   # host:port or unix:/path to listen on, or a list of them (the wsgi command's -addr wins)
//	socket_mode = "0660"      # permissions of the Unix sockets of addr (octal); default: as the umask leaves them
//	socket_owner = "www-data:www-data" # user[:group] owning the Unix sockets of addr; default: this process's
//	proxy_protocol = true     # read a PROXY protocol header (v1 or v2) on each connection from proxy_protocol_from
//	proxy_protocol_from = ["10.0.0.0/8"] # networks that must send one (Unix-socket peers always must); others must not
//	access_log = true         # one log record per request; default false
//	log_format = "json"       # "text" (default) or "json" (-log-format wins)
//	workers = 4               # worker processes, or "auto" (one per CPU); default 1 (-workers wins)
//	max_requests = 10000      # a worker is replaced after this many requests; 0 (default): never
//	max_requests_jitter = 500 # plus a random 0..N, so that workers do not restart together
//	max_rss = 512             # a worker is replaced above this resident size in MiB; 0 (default): never
//	admin_addr = "127.0.0.1:9090" # /metrics, /healthz, /readyz, /debug/wsgi/, /debug/pprof/; default none (-admin-addr wins)
//	admin_public = false      # allow an admin_addr other hosts can reach; default false (-admin-public wins)
//	tls_cert = "cert.pem"     # serve HTTPS (HTTP/2 by ALPN) with this chain...
//	tls_key = "key.pem"       # ...and key, reloaded when they change; default: no TLS
//	h2c = false               # cleartext HTTP/2 (prior knowledge) behind a proxy; default false
//	http3 = true              # HTTP/3 over UDP on the same port, with Alt-Svc; needs TLS; default false
//	acme_domains = ["example.com"] # automatic certificates for these domains; default none
//	acme_email = "ops@example.com" # ACME account contact; default none
//	acme_dir = "https://acme-v02.api.letsencrypt.org/directory" # the default
//	acme_cache = "acme"       # account key and certificates; default wsgi/acme in the user's cache dir
//	acme_http_addr = ":80"    # HTTP-01 challenges, other requests redirected to https; default none
//
//	[[app]]
//	name = "blog"             # required, unique; tags the app's log records
//	prefix = "/blog"          # mount path; "" or "/" (the default) is the root
//	dir = "blog"              # required: the app directory, first on sys.path
//	module = "app"            # required: module file without .py (dots for packages)
//	callable = "app"          # default "application"
//	protocol = "wsgi"         # "wsgi" (default), "asgi", or "auto" (an async callable means ASGI)
//	debug = true              # tracebacks in 500 responses and reload on .py changes
//	reload = true             # reload on .py changes only; default false
//	static = "always"         # "always" serves <dir>/static at <prefix>/static/; "no" (default)
//	threads = 16              # requests in the app at once; 0 (default) means 8, or 1024 for ASGI
//	interpreters = 2          # sub-interpreters with their own GIL (Python 3.13+); 0 (default): the main one
//	log_file = "logs/blog.log" # also append the app's log records here
//	queue_timeout = "10s"     # wait for a thread before a 503; default "30s"
//	request_timeout = "1m"    # past it the client gets 504; default: none
//	body_timeout = "20s"      # each read of the request body; default "60s", negative: none
//	max_body = 10485760       # largest request body in bytes (413 above); 0 (default): no limit
//	websocket_compression = "off" # permessage-deflate: "no-context-takeover" (default), "context-takeover", "off"
//	trusted_proxies = ["10.0.0.0/8", "::1"] # proxies whose X-Forwarded-*/Forwarded are believed ("unix": Unix-socket peers)
//	python_path = ["lib"]     # added to sys.path after dir
//	virtualenv = "venv"       # its site-packages is added after python_path
//
//	[app.auth]                # HTTP Basic authentication before the app
//	type = "basic"            # default "basic", the only type
//	htpasswd = "users.htpasswd" # required: user:bcrypt-hash lines
//	realm = "Blog"            # default: the app's name
//	pass_authorization = false # pass the Authorization header on to the app
//
//	[app.env]                 # extra environ keys for every request
//	BLOG_MODE = "production"
//
//	[[app]]
//	name = "shop"
//	prefix = "/shop"
//	dir = "/srv/shop"
//	module = "shop.wsgi"
//
// Load parses and checks a file; each problem is reported as
// "FILE:LINE: app "NAME": ..." naming the key. A syntax error or a value of
// the wrong type stops at the first; otherwise Load reports every problem
// it finds (unknown keys, then bad values), one a line. Config.Validate checks a Config
// built in Go. NewServer imports every app and mounts it at its prefix.
//
// # Built-in Go functions
//
// Every app may call these through the gohost module (see
// wsgi.Options.Functions), next to the extra functions given to NewServer
// (an extra function of the same name replaces a built-in one):
//
//   - ping() returns "pong"; its arguments are ignored.
//   - host() returns a dict: "go_version" (the Go runtime's version),
//     "uptime_seconds" (a float, since NewServer was called), "apps", a
//     list of dicts with each app's "name", "prefix" ("/" for the root)
//     and "requests" (requests served so far, in this process), and, in
//     a worker process of the wsgi command, "worker", its id (see
//     Server.SetWorker).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gowsgi/wsgi/internal/check"
	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Config is a server of several apps: the contents of a config file.
type Config struct {
	// Addr lists the addresses to listen on: "host:port", or
	// "unix:/path/to.sock" for a Unix socket. In a file, a string or an
	// array of strings; a relative socket path is relative to the file's
	// directory. If empty, the wsgi command's default
	// (127.0.0.1:8080). A Server does not listen; only the command uses it.
	Addr Addrs `toml:"addr"`

	// SocketMode is the permission bits of the Unix sockets of Addr, in
	// octal ("0660"). If empty, as the umask leaves them.
	SocketMode string `toml:"socket_mode"`

	// SocketOwner is "user[:group]" (names or numeric ids) owning the Unix
	// sockets of Addr; changing the user needs privileges. If empty,
	// this process's user and group.
	SocketOwner string `toml:"socket_owner"`

	// ProxyProtocol makes the wsgi command read a PROXY protocol header
	// (v1 or v2) at the start of every connection from ProxyProtocolFrom
	// or a Unix socket (required from them), and refuse one from any other
	// peer; the client address in the header becomes the request's. If
	// false, no header is read.
	ProxyProtocol bool `toml:"proxy_protocol"`

	// ProxyProtocolFrom lists the networks ("10.0.0.0/8") or addresses of
	// the proxies that send a PROXY protocol header. If nil, only peers on
	// a Unix socket.
	ProxyProtocolFrom []string `toml:"proxy_protocol_from"`

	// AccessLog logs one record per request of every app. If false, there
	// is no access log.
	AccessLog bool `toml:"access_log"`

	// LogFormat is "text" or "json", for the wsgi command's log. If empty,
	// "text".
	LogFormat string `toml:"log_format"`

	// Workers is how many worker processes the wsgi command runs, each
	// with its own interpreter, behind one listening socket; WorkersAuto
	// (the string "auto" in a file) means one per CPU this process may
	// use. A Server serves in one process; only the command uses it. If
	// zero, 1: a single process, no workers.
	Workers Workers `toml:"workers"`

	// MaxRequests makes the wsgi command replace a worker after it has
	// served this many requests (plus a random 0..MaxRequestsJitter): the
	// replacement starts and is ready first, then the old worker finishes
	// its requests and exits. Only with Workers above 1. If zero, never.
	MaxRequests int `toml:"max_requests"`

	// MaxRequestsJitter is the upper bound of the random number of
	// requests added to MaxRequests for each worker, so that workers do
	// not restart together. If zero, none.
	MaxRequestsJitter int `toml:"max_requests_jitter"`

	// MaxRSS makes the wsgi command replace a worker whose resident memory
	// is above this many MiB (checked every second), as MaxRequests does.
	// Only with Workers above 1. If zero, never.
	MaxRSS int `toml:"max_rss"`

	// AdminAddr is the host:port where the wsgi command serves its admin
	// endpoints: /metrics, /healthz, /readyz, the live view at
	// /debug/wsgi/ and Go's /debug/pprof/. The command refuses an address
	// that is not loopback unless AdminPublic is set. A Server does not
	// listen; only the command uses it. If empty, none.
	AdminAddr string `toml:"admin_addr"`

	// AdminPublic lets AdminAddr be an address other hosts can reach. The
	// admin endpoints show the requests in progress and profile the
	// process: put them behind a firewall or a proxy that authenticates.
	// If false, AdminAddr must be loopback.
	AdminPublic bool `toml:"admin_public"`

	// TLS, HTTP/2, HTTP/3 and automatic certificates: settings of the
	// wsgi command only (a Server does not listen); each is the flag of
	// the same name without its dash, and the flag wins.

	// TLSCert and TLSKey are PEM files of the certificate chain and its
	// private key: the command serves HTTPS (HTTP/2 by ALPN) and reloads
	// them when they change on disk. If empty, no TLS (unless
	// ACMEDomains).
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`

	// H2C serves cleartext HTTP/2 (prior knowledge) next to HTTP/1.1,
	// for a proxy in front. If false, cleartext is HTTP/1.1 only.
	H2C bool `toml:"h2c"`

	// HTTP3 also serves HTTP/3 over QUIC on the same port (UDP), and
	// advertises it with Alt-Svc. Needs TLS. If false, no HTTP/3.
	HTTP3 bool `toml:"http3"`

	// ACMEDomains are the domains to get certificates for from an ACME
	// certificate authority (TLS-ALPN-01, and HTTP-01 with ACMEHTTPAddr).
	// If empty, no automatic certificates.
	ACMEDomains []string `toml:"acme_domains"`

	// ACMEEmail is the contact address of the ACME account. If empty,
	// none.
	ACMEEmail string `toml:"acme_email"`

	// ACMEDir is the ACME directory URL. If empty, Let's Encrypt's
	// production directory.
	ACMEDir string `toml:"acme_dir"`

	// ACMECache is the directory that keeps the account key and the
	// certificates across restarts. If empty, wsgi/acme under the user's
	// cache directory ($XDG_CACHE_HOME or ~/.cache).
	ACMECache string `toml:"acme_cache"`

	// ACMEHTTPAddr is a host:port for HTTP-01 challenges (port 80 for a
	// real CA), which redirects every other request to https. If empty,
	// only TLS-ALPN-01.
	ACMEHTTPAddr string `toml:"acme_http_addr"`

	// NoReload turns off every app's reloading (Debug keeps its
	// tracebacks), for a process that is restarted instead when the code
	// changes: the wsgi command's workers. Not a key of the file. If
	// false, Debug and Reload reload.
	NoReload bool `toml:"-"`

	// Apps are the apps to serve, each at its own prefix. At least one.
	Apps []App `toml:"app"`
}

// App is one app of a Config. Each field maps to wsgi.Options.
type App struct {
	// Name tags the app's log records and names it in errors and in the
	// listing. Required, unique.
	Name string `toml:"name"`

	// Prefix is the URL path the app is mounted at ("/blog"). A trailing
	// slash is dropped. If empty or "/", the app is mounted at the root.
	// Unique.
	Prefix string `toml:"prefix"`

	// Dir is the app directory (wsgi.Options.Dir). Required. In a file, a
	// relative Dir is relative to the file's directory.
	Dir string `toml:"dir"`

	// Module is the module that holds the app, without ".py". Required.
	Module string `toml:"module"`

	// Callable is the WSGI callable in Module. If empty, "application".
	Callable string `toml:"callable"`

	// Protocol is "wsgi", "asgi" or "auto" (wsgi.Options.Protocol).
	// If empty, "wsgi".
	Protocol string `toml:"protocol"`

	// Debug puts tracebacks in 500 responses and re-imports the app when
	// a .py file under Dir changes (wsgi.Options.Debug and Reload). If
	// false, neither.
	Debug bool `toml:"debug"`

	// Reload re-imports the app when a .py file under Dir changes
	// (wsgi.Options.Reload), without Debug's tracebacks in responses. If
	// false, only Debug turns reloading on.
	Reload bool `toml:"reload"`

	// Static is "always" to serve <Dir>/static at <Prefix>/static/ from Go,
	// or "no" to leave those URLs to the app. If empty, "no".
	Static string `toml:"static"`

	// Auth, when set, requires authentication before a request reaches
	// the app. If nil, the app is open.
	Auth *Auth `toml:"auth"`

	// Threads is how many requests may be in the app at once. If zero, 8,
	// or 1024 for an ASGI app (wsgi.Options.Threads).
	Threads int `toml:"threads"`

	// Interpreters is how many isolated sub-interpreters, each with its
	// own GIL, the app is imported in (wsgi.Options.Interpreters). If zero
	// or 1, the main interpreter.
	Interpreters int `toml:"interpreters"`

	// Env holds extra environ keys for every request. If nil, none.
	Env map[string]string `toml:"env"`

	// LogFile, when set, also appends the app's log records to this file.
	// In a file, a relative path is relative to the file's directory. If
	// empty, records go to the logger only.
	LogFile string `toml:"log_file"`

	// QueueTimeout is how long a request may wait for one of the Threads
	// before it is answered 503 (wsgi.Options.QueueTimeout): a duration
	// as time.ParseDuration reads it ("30s"), not negative. If empty or
	// zero, 30 seconds.
	QueueTimeout string `toml:"queue_timeout"`

	// RequestTimeout bounds a request: past it the client gets 504
	// (wsgi.Options.RequestTimeout). A duration ("1m"), not negative. If
	// empty or zero, no bound.
	RequestTimeout string `toml:"request_timeout"`

	// BodyTimeout bounds each read of the request body
	// (wsgi.Options.BodyReadTimeout). A duration ("10s"); a negative one
	// means no bound. If empty or zero, 60 seconds.
	BodyTimeout string `toml:"body_timeout"`

	// MaxBody caps the request body, in bytes (wsgi.Options.MaxBodyBytes):
	// a larger declared Content-Length gets 413 before the app runs. Not
	// negative. If zero, no limit.
	MaxBody int64 `toml:"max_body"`

	// WebSocketCompression is what an ASGI app's WebSockets negotiate of
	// permessage-deflate (wsgi.Options.WebSocketCompression):
	// "no-context-takeover", "context-takeover" or "off". If empty,
	// "no-context-takeover".
	WebSocketCompression string `toml:"websocket_compression"`

	// TrustedProxies lists the networks ("10.0.0.0/8") or addresses of the
	// reverse proxies whose X-Forwarded-For, X-Forwarded-Proto and
	// Forwarded headers are believed (wsgi.Options.TrustedProxies); "unix"
	// stands for every peer on a Unix socket. If nil, none.
	TrustedProxies []string `toml:"trusted_proxies"`

	// PythonPath lists directories added to sys.path after Dir, in order
	// (wsgi.Options.PythonPath). Each must exist. In a file, relative
	// paths are relative to the file's directory. If nil, none.
	PythonPath []string `toml:"python_path"`

	// Virtualenv is a virtual environment directory whose site-packages is
	// added to sys.path after PythonPath (wsgi.Options.Virtualenv; NewServer
	// checks that it has one for the linked Python). In a file, a relative
	// path is relative to the file's directory. If empty, none.
	Virtualenv string `toml:"virtualenv"`
}

// Addrs is a list of listening addresses. In a file it is a string (one
// address) or an array of strings.
type Addrs []string

// UnmarshalText reads a single address.
func (a *Addrs) UnmarshalText(b []byte) error {
	*a = Addrs{string(b)}
	return nil
}

// Workers is a number of worker processes: a count, or WorkersAuto. In a
// file it is an integer or the string "auto".
type Workers int

// WorkersAuto is one worker per CPU this process may use (its scheduler
// affinity, as runtime.NumCPU reports it).
const WorkersAuto Workers = -1

// Count is the number of worker processes: 1 for zero, runtime.NumCPU()
// for WorkersAuto.
func (w Workers) Count() int {
	switch {
	case w == WorkersAuto:
		return runtime.NumCPU()
	case w <= 0:
		return 1
	}
	return int(w)
}

// String is "auto" or the count.
func (w Workers) String() string {
	if w == WorkersAuto {
		return "auto"
	}
	return strconv.Itoa(int(w))
}

// MarshalText is String's text.
func (w Workers) MarshalText() ([]byte, error) { return []byte(w.String()), nil }

// UnmarshalText reads "auto" or a positive count.
func (w *Workers) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "auto" {
		*w = WorkersAuto
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return errWorkers
	}
	*w = Workers(n)
	return nil
}

// errWorkers is UnmarshalText's error; decodeError puts it on its line.
var errWorkers = errors.New(`workers must be a positive integer or "auto"`)

// Auth is an app's authentication (wsgi.Options.BasicAuth).
type Auth struct {
	// Type is the scheme: "basic". If empty, "basic".
	Type string `toml:"type"`

	// Htpasswd is a file of "user:bcrypt-hash" lines (htpasswd -B).
	// Required. In a file, a relative path is relative to the file's
	// directory.
	Htpasswd string `toml:"htpasswd"`

	// Realm is sent in WWW-Authenticate. If empty, the app's name.
	Realm string `toml:"realm"`

	// PassAuthorization passes the Authorization header on to the app.
	// If false, the app never sees the credentials.
	PassAuthorization bool `toml:"pass_authorization"`
}

// Error is one problem with a configuration.
type Error struct {
	// File is the config file as given to Load, or "" for a Config built
	// in Go.
	File string
	// Line is the problem's line in File (1-based), or 0 if none.
	Line int
	// App is the app's name, "#N" (1-based) for an app without one, or ""
	// for a top-level setting.
	App string
	// Key is the key at fault ("prefix", "auth.htpasswd"), or "" if the
	// problem is not one key's.
	Key string
	// Msg says what is wrong.
	Msg string
}

func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		b.WriteString(e.File + ": ")
	default:
		b.WriteString("wsgi: ")
	}
	switch {
	case strings.HasPrefix(e.App, "#"):
		b.WriteString("app " + e.App + ": ")
	case e.App != "":
		fmt.Fprintf(&b, "app %q: ", e.App)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads the TOML file at path and checks it as Validate does, with
// each problem reported at its line. Relative paths in the file are made
// absolute against the file's directory, prefixes are normalised ("/x",
// "" for the root) and empty settings get their defaults in the returned
// Config. An error lists every problem found, one a line; each is an
// *Error (use errors.As).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("wsgi: reading config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("wsgi: reading config: %w", err)
	}
	base := filepath.Dir(abs)
	idx := indexDocument(data)

	var cfg Config
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, decodeError(path, idx, err)
	}
	v := &validator{file: path, base: base, idx: idx}
	v.check(&cfg)
	if err := v.err(); err != nil {
		return nil, err
	}
	cfg.normalise(base)
	return &cfg, nil
}

// Validate checks a Config built in Go: what Load checks, without line
// numbers. Relative paths are relative to the current directory. It does
// not change c.
func (c *Config) Validate() error {
	v := &validator{}
	v.check(c)
	return v.err()
}

// normalise fills in defaults and makes paths absolute against base.
func (c *Config) normalise(base string) {
	if c.LogFormat == "" {
		c.LogFormat = "text"
	}
	for _, p := range []*string{&c.TLSCert, &c.TLSKey, &c.ACMECache} {
		if *p != "" {
			*p = resolvePath(base, *p)
		}
	}
	if c.Addr != nil {
		addrs := make(Addrs, len(c.Addr))
		for i, a := range c.Addr {
			if path, ok := strings.CutPrefix(a, "unix:"); ok && path != "" {
				a = "unix:" + resolvePath(base, path)
			}
			addrs[i] = a
		}
		c.Addr = addrs
	}
	for i := range c.Apps {
		a := &c.Apps[i]
		a.Prefix, _ = cleanPrefix(a.Prefix)
		a.Dir = resolvePath(base, a.Dir)
		if a.LogFile != "" {
			a.LogFile = resolvePath(base, a.LogFile)
		}
		if a.PythonPath != nil {
			paths := make([]string, len(a.PythonPath))
			for j, p := range a.PythonPath {
				paths[j] = resolvePath(base, p)
			}
			a.PythonPath = paths
		}
		if a.Virtualenv != "" {
			a.Virtualenv = resolvePath(base, a.Virtualenv)
		}
		if a.Protocol == "" {
			a.Protocol = "wsgi"
		}
		if a.Static == "" {
			a.Static = "no"
		}
		if a.Auth != nil {
			auth := *a.Auth
			if auth.Type == "" {
				auth.Type = "basic"
			}
			auth.Htpasswd = resolvePath(base, auth.Htpasswd)
			a.Auth = &auth
		}
	}
}

// resolvePath makes p absolute against base ("" means the current
// directory).
func resolvePath(base, p string) string {
	if base != "" && !filepath.IsAbs(p) {
		p = filepath.Join(base, p)
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// Expected types of the keys, for type errors. Keys of an app have no
// "app." in front; "env.*" stands for every key of env.
var keyTypes = map[string]string{
	"addr":                    "a string or an array of strings",
	"socket_mode":             `a string (octal, such as "0660")`,
	"socket_owner":            `a string ("user" or "user:group")`,
	"proxy_protocol":          "a boolean",
	"proxy_protocol_from":     "an array of strings",
	"access_log":              "a boolean",
	"log_format":              "a string",
	"workers":                 `a positive integer or "auto"`,
	"max_requests":            "an integer",
	"max_requests_jitter":     "an integer",
	"max_rss":                 "an integer (MiB)",
	"admin_addr":              "a string",
	"admin_public":            "a boolean",
	"tls_cert":                "a string",
	"tls_key":                 "a string",
	"h2c":                     "a boolean",
	"http3":                   "a boolean",
	"acme_domains":            "an array of strings",
	"acme_email":              "a string",
	"acme_dir":                "a string",
	"acme_cache":              "a string",
	"acme_http_addr":          "a string",
	"app":                     "an array of tables ([[app]])",
	"name":                    "a string",
	"prefix":                  "a string",
	"dir":                     "a string",
	"module":                  "a string",
	"callable":                "a string",
	"protocol":                "a string",
	"debug":                   "a boolean",
	"reload":                  "a boolean",
	"static":                  `a string ("always" or "no")`,
	"auth":                    "a table",
	"auth.type":               "a string",
	"auth.htpasswd":           "a string",
	"auth.realm":              "a string",
	"auth.pass_authorization": "a boolean",
	"threads":                 "an integer",
	"interpreters":            "an integer",
	"env":                     "a table of strings",
	"env.*":                   "a string",
	"log_file":                "a string",
	"queue_timeout":           `a string (a duration such as "30s")`,
	"request_timeout":         `a string (a duration such as "30s")`,
	"body_timeout":            `a string (a duration such as "30s")`,
	"max_body":                "an integer (bytes)",
	"websocket_compression":   "a string",
	"trusted_proxies":         "an array of strings",
	"python_path":             "an array of strings",
	"virtualenv":              "a string",
}

// tomlTypeRe finds the TOML type in go-toml's type mismatch message,
// "cannot decode TOML string into ...".
var tomlTypeRe = regexp.MustCompile(`cannot decode TOML (\w+)`)

// decodeError turns the decoder's error into *Error values with lines.
func decodeError(file string, idx *docIndex, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		errs := make([]error, 0, len(strict.Errors))
		for i := range strict.Errors {
			de := &strict.Errors[i]
			line, _ := de.Position()
			_, app, key := idx.splitKey(line, de.Key())
			errs = append(errs, &Error{File: file, Line: line, App: app, Key: key,
				Msg: fmt.Sprintf("key %q is not allowed", key)})
		}
		return joinErrors(errs)
	}
	if errors.Is(err, errWorkers) {
		// A value of another type reaches UnmarshalText too, and the
		// decoder then does not say where.
		return &Error{File: file, Line: idx.top["workers"], Key: "workers", Msg: errWorkers.Error()}
	}
	var de *toml.DecodeError
	if !errors.As(err, &de) {
		return &Error{File: file, Msg: err.Error()}
	}
	line, _ := de.Position()
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	if msg == errWorkers.Error() {
		return &Error{File: file, Line: line, Key: "workers", Msg: msg}
	}
	if len(de.Key()) == 0 {
		app := ""
		if i := idx.appAt(line); i >= 0 {
			app = idx.label(i)
		}
		return &Error{File: file, Line: line, App: app, Msg: msg}
	}
	if strings.HasPrefix(msg, "key ") && strings.HasSuffix(msg, " is already defined") {
		_, app, key := idx.splitKey(line, de.Key())
		return &Error{File: file, Line: line, App: app, Key: key, Msg: fmt.Sprintf("key %q is defined twice", key)}
	}
	i, app, key := idx.splitKey(line, de.Key())
	// In app = [{...}] the decoder names only "app"; keep its message.
	if m := tomlTypeRe.FindStringSubmatch(msg); m != nil && !(key == "app" && i >= 0) {
		if key == "env" && i >= 0 && idx.apps[i].kind["env"] == unstable.InlineTable {
			return &Error{File: file, Line: line, App: app, Key: key,
				Msg: fmt.Sprintf(`"env" values must be strings, not %s`, article(m[1]))}
		}
		want := keyTypes[key]
		if want == "" && strings.HasPrefix(key, "env.") {
			want = keyTypes["env.*"]
		}
		if want != "" {
			return &Error{File: file, Line: line, App: app, Key: key,
				Msg: fmt.Sprintf("%q must be %s, not %s", key, want, article(m[1]))}
		}
	}
	return &Error{File: file, Line: line, App: app, Key: key, Msg: fmt.Sprintf("%q: %s", key, msg)}
}

// article puts "a" or "an" before a TOML type name.
func article(typ string) string {
	if typ != "" && strings.ContainsRune("aeiou", rune(typ[0])) {
		return "an " + typ
	}
	return "a " + typ
}

func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errors.Join(errs...)
}

// docIndex records where keys are in a TOML document, for messages about
// values that decoded fine but are wrong.
type docIndex struct {
	top     map[string]int // top-level key path -> line
	apps    []appLines
	regions []region // the tables, in order
}

// region is a table header's line and the app it belongs to (-1 for none).
type region struct{ line, app int }

// appLines is where one [[app]] table and its keys are.
type appLines struct {
	line int                      // the [[app]] header (or inline table)
	name string                   // its name, if a string
	keys map[string]int           // key path within the app ("auth.htpasswd") -> line
	kind map[string]unstable.Kind // key path -> the value's kind
}

// indexDocument walks the document with go-toml's parser. A document that
// does not parse is indexed up to the error (the decoder reports it).
func indexDocument(data []byte) *docIndex {
	idx := &docIndex{top: map[string]int{}}
	var p unstable.Parser
	p.Reset(data)
	app := -1          // the app the current table belongs to
	var table []string // the current table's path within it (or the top level)
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			key, line := keyParts(&p, e.Key())
			switch {
			case len(key) == 1 && key[0] == "app":
				idx.apps = append(idx.apps, newAppLines(line))
				app, table = len(idx.apps)-1, nil
			case len(key) > 1 && key[0] == "app" && app >= 0:
				table = key[1:]
				idx.apps[app].keys[strings.Join(table, ".")] = line
			default:
				app, table = -1, key
				idx.top[strings.Join(key, ".")] = line
			}
			idx.regions = append(idx.regions, region{line, app})
		case unstable.KeyValue:
			key, line := keyParts(&p, e.Key())
			path := append(append([]string(nil), table...), key...)
			if app >= 0 {
				idx.addAppKey(&p, app, path, line, e.Value())
				continue
			}
			idx.top[strings.Join(path, ".")] = line
			if len(path) == 1 && path[0] == "app" && e.Value().Kind == unstable.Array {
				// app = [{...}, {...}]
				for it := e.Value().Children(); it.Next(); {
					n := it.Node()
					if n.Kind != unstable.InlineTable {
						continue
					}
					idx.apps = append(idx.apps, newAppLines(nodeLine(&p, n, line)))
					idx.regions = append(idx.regions, region{idx.apps[len(idx.apps)-1].line, len(idx.apps) - 1})
					idx.addInline(&p, len(idx.apps)-1, nil, n)
				}
			}
		}
	}
	return idx
}

func newAppLines(line int) appLines {
	return appLines{line: line, keys: map[string]int{}, kind: map[string]unstable.Kind{}}
}

// addAppKey records a key of app i, the keys of an inline table value and
// the items of an array value (as "key.N", N from 0).
func (idx *docIndex) addAppKey(p *unstable.Parser, i int, path []string, line int, value *unstable.Node) {
	a := &idx.apps[i]
	key := strings.Join(path, ".")
	a.keys[key] = line
	a.kind[key] = value.Kind
	if len(path) == 1 && path[0] == "name" && value.Kind == unstable.String {
		a.name = string(value.Data)
	}
	switch value.Kind {
	case unstable.InlineTable:
		idx.addInline(p, i, path, value)
	case unstable.Array:
		n := 0
		for it := value.Children(); it.Next(); n++ {
			a.keys[key+"."+strconv.Itoa(n)] = nodeLine(p, it.Node(), line)
		}
	}
}

// addInline records the keys of an inline table at path in app i.
func (idx *docIndex) addInline(p *unstable.Parser, i int, path []string, table *unstable.Node) {
	for it := table.Children(); it.Next(); {
		kv := it.Node()
		if kv.Kind != unstable.KeyValue {
			continue
		}
		key, line := keyParts(p, kv.Key())
		idx.addAppKey(p, i, append(append([]string(nil), path...), key...), line, kv.Value())
	}
}

// keyParts returns a key's parts and the line of its first part.
func keyParts(p *unstable.Parser, it unstable.Iterator) ([]string, int) {
	var parts []string
	line := 0
	for it.Next() {
		n := it.Node()
		if line == 0 {
			line = nodeLine(p, n, 0)
		}
		parts = append(parts, string(n.Data))
	}
	return parts, line
}

// nodeLine is the line a node starts on, or def if it has no position.
func nodeLine(p *unstable.Parser, n *unstable.Node, def int) int {
	if n.Raw.Length == 0 && n.Raw.Offset == 0 {
		return def
	}
	return p.Shape(n.Raw).Start.Line
}

// appAt returns the index of the app whose table holds line, or -1.
func (idx *docIndex) appAt(line int) int {
	found := -1
	for _, r := range idx.regions {
		if r.line <= line {
			found = r.app
		}
	}
	return found
}

// splitKey turns a decoder key (["app", "auth", "typ"]) into the app's
// index and label and the key within it, using the line to tell the apps
// apart. The decoder's key may lack the "app" part.
func (idx *docIndex) splitKey(line int, key toml.Key) (i int, app, rest string) {
	i = idx.appAt(line)
	if i < 0 {
		return -1, "", strings.Join(key, ".")
	}
	if len(key) > 1 && key[0] == "app" {
		key = key[1:]
	}
	return i, idx.label(i), strings.Join(key, ".")
}

func (idx *docIndex) label(i int) string {
	if i < len(idx.apps) && idx.apps[i].name != "" {
		return idx.apps[i].name
	}
	return "#" + strconv.Itoa(i+1)
}

// validator collects the problems of a Config.
type validator struct {
	file string    // "" for a Config built in Go
	base string    // directory relative paths are resolved against ("" for the current one)
	idx  *docIndex // nil for a Config built in Go
	errs []error
}

// err returns the problems in the order of their lines.
func (v *validator) err() error {
	slices.SortStableFunc(v.errs, func(a, b error) int {
		return a.(*Error).Line - b.(*Error).Line
	})
	return joinErrors(v.errs)
}

// line is where key of app i is (or the app's table if the key is not
// there); for a top-level key (i < 0), the key's line or 0.
func (v *validator) line(i int, key string) int {
	if v.idx == nil {
		return 0
	}
	if i < 0 {
		return v.idx.top[key]
	}
	if i >= len(v.idx.apps) {
		return 0
	}
	a := v.idx.apps[i]
	for k := key; k != ""; {
		if l, ok := a.keys[k]; ok {
			return l
		}
		dot := strings.LastIndexByte(k, '.')
		if dot < 0 {
			break
		}
		k = k[:dot]
	}
	return a.line
}

func (v *validator) add(app string, i int, key, format string, args ...any) {
	v.addAt(app, i, key, key, format, args...)
}

// addAt reports a problem with key whose line is lineKey's ("key.N" for
// an array's item N).
func (v *validator) addAt(app string, i int, lineKey, key, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.file, Line: v.line(i, lineKey), App: app, Key: key,
		Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) check(c *Config) {
	switch c.LogFormat {
	case "", "text", "json":
	default:
		v.add("", -1, "log_format", `log_format %q must be "text" or "json"`, c.LogFormat)
	}
	for _, a := range c.Addr {
		if path, ok := strings.CutPrefix(a, "unix:"); ok {
			if path == "" {
				v.add("", -1, "addr", "addr %q has no socket path", a)
			}
		} else if _, _, err := net.SplitHostPort(a); err != nil {
			v.add("", -1, "addr", "addr %q is neither host:port nor unix:/path", a)
		}
	}
	if c.SocketMode != "" {
		if m, err := strconv.ParseUint(c.SocketMode, 8, 32); err != nil || m > 0o777 {
			v.add("", -1, "socket_mode", "socket_mode %q is not octal permission bits such as \"0660\"", c.SocketMode)
		}
	}
	if c.SocketOwner != "" {
		if u, g, _ := strings.Cut(c.SocketOwner, ":"); u == "" && g == "" || strings.Contains(g, ":") {
			v.add("", -1, "socket_owner", "socket_owner %q is not user[:group]", c.SocketOwner)
		}
	}
	for _, p := range c.ProxyProtocolFrom {
		if _, ok := check.Proxy(p); !ok {
			v.add("", -1, "proxy_protocol_from", "proxy_protocol_from %q is neither an address nor a CIDR network", p)
		}
	}
	if c.Workers < WorkersAuto {
		v.add("", -1, "workers", "%s", errWorkers.Error())
	}
	for _, n := range []struct {
		key string
		val int
	}{{"max_requests", c.MaxRequests}, {"max_requests_jitter", c.MaxRequestsJitter}, {"max_rss", c.MaxRSS}} {
		if n.val < 0 {
			v.add("", -1, n.key, "%s %d must not be negative", n.key, n.val)
		}
	}
	if len(c.Apps) == 0 {
		v.errs = append(v.errs, &Error{File: v.file, Key: "app", Msg: "no apps: add an [[app]] table"})
		return
	}
	type seen struct {
		name string
		i    int
	}
	names := map[string]int{}
	prefixes := map[string]seen{}
	for i := range c.Apps {
		a := &c.Apps[i]
		label := a.Name
		if label == "" {
			label = "#" + strconv.Itoa(i+1)
		}
		if a.Name == "" {
			v.add(label, i, "name", `missing key "name"`)
		} else if j, dup := names[a.Name]; dup {
			v.add(label, i, "name", "name %q is already used by the app %s", a.Name, v.where(j, "name"))
		} else {
			names[a.Name] = i
		}

		if p, err := cleanPrefix(a.Prefix); err != nil {
			v.add(label, i, "prefix", "prefix %q %s", a.Prefix, err)
		} else if other, dup := prefixes[p]; dup {
			shown := p
			if shown == "" {
				shown = "/"
			}
			v.add(label, i, "prefix", "prefix %q is already used by app %q%s", shown, other.name, v.at(other.i, "prefix"))
		} else {
			prefixes[p] = seen{label, i}
		}

		if a.Dir == "" {
			v.add(label, i, "dir", `missing key "dir"`)
		} else {
			v.checkPath(label, i, "dir", a.Dir, true)
		}
		switch {
		case a.Module == "":
			v.add(label, i, "module", `missing key "module"`)
		case strings.HasSuffix(a.Module, ".py"):
			v.add(label, i, "module", "module %q: write it without .py", a.Module)
		case !check.DottedName(a.Module):
			v.add(label, i, "module", "module %q is not a Python module name", a.Module)
		}
		if a.Callable != "" && !check.DottedName(a.Callable) {
			v.add(label, i, "callable", "callable %q is not a Python name", a.Callable)
		}
		switch a.Protocol {
		case "", "wsgi", "asgi", "auto":
		default:
			v.add(label, i, "protocol", `protocol %q must be "wsgi", "asgi" or "auto"`, a.Protocol)
		}
		switch a.Static {
		case "", "always", "no":
		default:
			v.add(label, i, "static", `static %q must be "always" or "no"`, a.Static)
		}
		if a.Threads < 0 {
			v.add(label, i, "threads", "threads %d must not be negative", a.Threads)
		}
		if a.Interpreters < 0 {
			v.add(label, i, "interpreters", "interpreters %d must not be negative", a.Interpreters)
		}
		for k := range a.Env {
			if k == "" || strings.HasPrefix(k, "wsgi.") {
				v.add(label, i, "env."+k, "env key %q is reserved", k)
			}
		}
		if a.LogFile != "" {
			dir := filepath.Dir(a.LogFile)
			if st, err := os.Stat(resolvePath(v.base, dir)); err != nil || !st.IsDir() {
				v.add(label, i, "log_file", "log_file %q: directory %q does not exist", a.LogFile, dir)
			}
		}
		v.checkDuration(label, i, "queue_timeout", a.QueueTimeout, false)
		v.checkDuration(label, i, "request_timeout", a.RequestTimeout, false)
		v.checkDuration(label, i, "body_timeout", a.BodyTimeout, true)
		if a.MaxBody < 0 {
			v.add(label, i, "max_body", "max_body %d must not be negative", a.MaxBody)
		}
		switch a.WebSocketCompression {
		case "", "no-context-takeover", "context-takeover", "off":
		default:
			v.add(label, i, "websocket_compression",
				"websocket_compression %q: want no-context-takeover, context-takeover or off", a.WebSocketCompression)
		}
		for j, p := range a.TrustedProxies {
			if _, ok := check.Proxy(p); !ok {
				v.addAt(label, i, itemKey("trusted_proxies", j), "trusted_proxies",
					"trusted_proxies %q is neither an address nor a CIDR network", p)
			}
		}
		for j, p := range a.PythonPath {
			if p == "" {
				v.addAt(label, i, itemKey("python_path", j), "python_path", "python_path has an empty directory")
				continue
			}
			v.checkPathAt(label, i, itemKey("python_path", j), "python_path", p, true)
		}
		if a.Virtualenv != "" {
			v.checkPath(label, i, "virtualenv", a.Virtualenv, true)
		}
		if a.Auth != nil {
			switch a.Auth.Type {
			case "", "basic":
			default:
				v.add(label, i, "auth.type", `auth.type %q is not supported (want "basic")`, a.Auth.Type)
			}
			if a.Auth.Htpasswd == "" {
				v.add(label, i, "auth.htpasswd", `missing key "auth.htpasswd"`)
			} else {
				v.checkPath(label, i, "auth.htpasswd", a.Auth.Htpasswd, false)
			}
		}
	}
}

// checkPath checks that p (relative to the base) exists and is a
// directory or not, as wantDir says.
func (v *validator) checkPath(label string, i int, key, p string, wantDir bool) {
	v.checkPathAt(label, i, key, key, p, wantDir)
}

// checkPathAt is checkPath for a path at lineKey's line (an array item).
func (v *validator) checkPathAt(label string, i int, lineKey, key, p string, wantDir bool) {
	st, err := os.Stat(resolvePath(v.base, p))
	switch {
	case errors.Is(err, os.ErrNotExist):
		v.addAt(label, i, lineKey, key, "%s %q does not exist", key, p)
	case err != nil:
		v.addAt(label, i, lineKey, key, "%s %q: %v", key, p, err)
	case wantDir && !st.IsDir():
		v.addAt(label, i, lineKey, key, "%s %q is not a directory", key, p)
	case !wantDir && st.IsDir():
		v.addAt(label, i, lineKey, key, "%s %q is a directory, not a file", key, p)
	}
}

// checkDuration checks that s is empty or a duration, not negative unless
// negative says it may be.
func (v *validator) checkDuration(label string, i int, key, s string, negative bool) {
	d, err := parseDuration(s)
	switch {
	case err != nil:
		v.add(label, i, key, `%s %q is not a duration (such as "30s" or "1m")`, key, s)
	case d < 0 && !negative:
		v.add(label, i, key, "%s %q must not be negative", key, s)
	}
}

// parseDuration reads a duration key: "" is zero.
func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	return time.ParseDuration(s)
}

// itemKey is the docIndex key of an array's item j.
func itemKey(key string, j int) string { return key + "." + strconv.Itoa(j) }

// where names app j for a message: "at line N" or "#N".
func (v *validator) where(j int, key string) string {
	if l := v.line(j, key); l > 0 {
		return fmt.Sprintf("at line %d", l)
	}
	return "#" + strconv.Itoa(j+1)
}

// at is " (line N)" for key of app j, or "" without lines.
func (v *validator) at(j int, key string) string {
	if l := v.line(j, key); l > 0 {
		return fmt.Sprintf(" (line %d)", l)
	}
	return ""
}

// cleanPrefix normalises a prefix: "/shop/" becomes "/shop", "" and "/"
// become "". The error completes `prefix "x" ...`.
func cleanPrefix(p string) (string, error) {
	if p == "" || p == "/" {
		return "", nil
	}
	if !strings.HasPrefix(p, "/") {
		return "", errors.New("must start with /")
	}
	p = strings.TrimRight(p, "/")
	for _, r := range p {
		if r <= ' ' || r == 0x7f || strings.ContainsRune("?#%{}\\", r) {
			return "", fmt.Errorf("must be a plain path (no %q)", r)
		}
	}
	for _, seg := range strings.Split(p[1:], "/") {
		switch seg {
		case "":
			return "", errors.New("must not contain //")
		case ".", "..":
			return "", errors.New("must not contain . or .. segments")
		}
	}
	return p, nil
}
