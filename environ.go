package wsgi

import (
	"context"
	"encoding/binary"
	"math"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
)

// knownEnvironKeys are the keys C turns into interned Python strings once;
// an entry refers to them by index. The order is part of the format shared
// with C: append, never reorder. The first 16 have env* constants.
var knownEnvironKeys = []string{
	"REQUEST_METHOD",
	"SCRIPT_NAME",
	"PATH_INFO",
	"QUERY_STRING",
	"CONTENT_TYPE",
	"CONTENT_LENGTH",
	"SERVER_NAME",
	"SERVER_PORT",
	"SERVER_PROTOCOL",
	"REMOTE_ADDR",
	"REMOTE_PORT",
	"REQUEST_URI",
	"HTTPS",
	"wsgi.url_scheme",
	"REMOTE_USER",
	"AUTH_TYPE",

	// Common request headers, so that most requests need no key bytes.
	"HTTP_HOST",
	"HTTP_USER_AGENT",
	"HTTP_ACCEPT",
	"HTTP_ACCEPT_ENCODING",
	"HTTP_ACCEPT_LANGUAGE",
	"HTTP_ACCEPT_CHARSET",
	"HTTP_CONNECTION",
	"HTTP_KEEP_ALIVE",
	"HTTP_COOKIE",
	"HTTP_REFERER",
	"HTTP_ORIGIN",
	"HTTP_AUTHORIZATION",
	"HTTP_CACHE_CONTROL",
	"HTTP_PRAGMA",
	"HTTP_UPGRADE",
	"HTTP_UPGRADE_INSECURE_REQUESTS",
	"HTTP_SEC_FETCH_DEST",
	"HTTP_SEC_FETCH_MODE",
	"HTTP_SEC_FETCH_SITE",
	"HTTP_SEC_FETCH_USER",
	"HTTP_SEC_CH_UA",
	"HTTP_SEC_CH_UA_MOBILE",
	"HTTP_SEC_CH_UA_PLATFORM",
	"HTTP_SEC_WEBSOCKET_KEY",
	"HTTP_SEC_WEBSOCKET_VERSION",
	"HTTP_X_FORWARDED_FOR",
	"HTTP_X_FORWARDED_PROTO",
	"HTTP_X_FORWARDED_HOST",
	"HTTP_X_FORWARDED_PORT",
	"HTTP_X_REAL_IP",
	"HTTP_X_REQUESTED_WITH",
	"HTTP_X_CSRFTOKEN",
	"HTTP_X_CSRF_TOKEN",
	"HTTP_FORWARDED",
	"HTTP_VIA",
	"HTTP_IF_NONE_MATCH",
	"HTTP_IF_MODIFIED_SINCE",
	"HTTP_IF_MATCH",
	"HTTP_IF_UNMODIFIED_SINCE",
	"HTTP_IF_RANGE",
	"HTTP_RANGE",
	"HTTP_EXPECT",
	"HTTP_TE",
	"HTTP_DNT",
	"HTTP_PRIORITY",
}

// Indexes into knownEnvironKeys of the keys buildEnviron sets itself.
const (
	envRequestMethod int = iota
	envScriptName
	envPathInfo
	envQueryString
	envContentType
	envContentLength
	envServerName
	envServerPort
	envServerProtocol
	envRemoteAddr
	envRemotePort
	envRequestURI
	envHTTPS
	envURLScheme
	envRemoteUser
	envAuthType
)

// otherKey marks an entry that carries its key bytes instead of an index.
const otherKey = 0xFFFF

// Header ids below zero mean "not an HTTP_* key".
const (
	hdrSkip  = -1 // dropped: CONTENT_TYPE/CONTENT_LENGTH have their own keys, Host is r.Host, Proxy is httpoxy
	hdrOther = -2 // not in knownEnvironKeys: write "HTTP_"+name as key bytes
)

var (
	// knownEnvironIDs maps a key of knownEnvironKeys to its index.
	knownEnvironIDs = make(map[string]int, len(knownEnvironKeys))
	// headerEnvironIDs maps a canonical header name to the index of its
	// HTTP_* key, or to hdrSkip, so common headers cost one map lookup.
	headerEnvironIDs = map[string]int{
		"Content-Type":   hdrSkip,
		"Content-Length": hdrSkip,
		"Host":           hdrSkip,
		"Proxy":          hdrSkip,
	}
	envHTTPHost, envHTTPCookie int
)

func init() {
	if len(knownEnvironKeys) >= otherKey {
		panic("wsgi: too many known environ keys")
	}
	for id, k := range knownEnvironKeys {
		if _, dup := knownEnvironIDs[k]; dup {
			panic("wsgi: duplicate known environ key " + k)
		}
		knownEnvironIDs[k] = id
		if name, ok := strings.CutPrefix(k, "HTTP_"); ok && k != "HTTP_HOST" {
			name = textproto.CanonicalMIMEHeaderKey(strings.ReplaceAll(name, "_", "-"))
			headerEnvironIDs[name] = id
		}
	}
	envHTTPHost = knownEnvironIDs["HTTP_HOST"]
	envHTTPCookie = knownEnvironIDs["HTTP_COOKIE"]
}

// environ is a packed environ being built; it is reused across requests
// (reset keeps the capacity). Entries are little-endian:
//
//	known key: [u16 id][u32 vlen][value]
//	other key: [u16 0xFFFF][u32 klen][key][u32 vlen][value]
//
// C makes every key and value a str, values decoded as latin-1; a later
// entry for the same key wins.
type environ struct {
	buf []byte
	n   int
}

func (e *environ) reset() {
	e.buf = e.buf[:0]
	e.n = 0
}

func (e *environ) bytes() []byte { return e.buf }

// len returns the number of entries (not of distinct keys).
func (e *environ) len() int { return e.n }

// add adds key=value, using the short form when key is a known key.
func (e *environ) add(key, value string) {
	if id, ok := knownEnvironIDs[key]; ok {
		e.addKnown(id, value)
		return
	}
	e.buf = binary.LittleEndian.AppendUint16(e.buf, otherKey)
	e.appendString(key)
	e.appendString(value)
	e.n++
}

// addKnown adds knownEnvironKeys[id]=value.
func (e *environ) addKnown(id int, value string) {
	e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(id))
	e.appendString(value)
	e.n++
}

// appendString appends [u32 len][s].
func (e *environ) appendString(s string) {
	if uint64(len(s)) > math.MaxUint32 {
		// Unreachable for real requests; a wrapped length would corrupt
		// every later entry, which is worse than a panic.
		panic("wsgi: environ string too long")
	}
	e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(len(s)))
	e.buf = append(e.buf, s...)
}

// beginValue starts a value whose length is not known yet; endValue
// patches it in. It lets joined header values go straight into buf.
func (e *environ) beginValue() int {
	e.buf = append(e.buf, 0, 0, 0, 0)
	return len(e.buf)
}

func (e *environ) endValue(start int) {
	n := len(e.buf) - start
	if uint64(n) > math.MaxUint32 {
		panic("wsgi: environ string too long")
	}
	binary.LittleEndian.PutUint32(e.buf[start-4:], uint32(n))
	e.n++
}

// addHeader adds the HTTP_* entry for one header, joining repeated values.
func (e *environ) addHeader(name string, values []string) {
	if len(values) == 0 {
		return
	}
	id, ok := headerEnvironIDs[name]
	if !ok {
		id = headerID(name)
	}
	sep := ", "
	switch id {
	case hdrSkip:
		return
	case hdrOther:
		if strings.EqualFold(name, "cookie") {
			sep = "; "
		}
		e.buf = binary.LittleEndian.AppendUint16(e.buf, otherKey)
		e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(len("HTTP_")+len(name)))
		e.buf = append(e.buf, "HTTP_"...)
		for i := 0; i < len(name); i++ {
			c := name[i]
			switch {
			case c == '-':
				c = '_'
			case 'a' <= c && c <= 'z':
				c -= 'a' - 'A'
			}
			e.buf = append(e.buf, c)
		}
	default:
		if id == envHTTPCookie {
			sep = "; " // RFC 6265 section 5.4: one Cookie header, pairs joined by "; "
		}
		e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(id))
	}
	start := e.beginValue()
	for i, v := range values {
		if i > 0 {
			e.buf = append(e.buf, sep...)
		}
		e.buf = append(e.buf, v...)
	}
	e.endValue(start)
}

// headerID classifies a header name that is not in headerEnvironIDs
// (uncommon, or not in canonical form because the request was built by
// hand).
//
// Like Apache 2.4 and nginx, it drops names with anything but letters,
// digits and '-': with '_' allowed, "X_Forwarded_For" would become the
// same HTTP_X_FORWARDED_FOR as a proxy's "X-Forwarded-For", and other
// punctuation has no sane spelling as an environ key.
func headerID(name string) int {
	if name == "" {
		return hdrSkip
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return hdrSkip
		}
	}
	for _, s := range [...]string{"content-type", "content-length", "host", "proxy"} {
		if strings.EqualFold(name, s) {
			return hdrSkip
		}
	}
	return hdrOther
}

// environCtxKey is the context key of the map WithEnviron stores.
type environCtxKey struct{}

// WithEnviron returns a copy of ctx carrying environ keys for the WSGI app,
// merged over any set earlier in ctx (the new map wins). They are added
// after all other keys, so they override CGI and HTTP_* keys and
// Options.Env. Keys starting with "wsgi." and empty keys are ignored.
//
// Go middleware in front of the Handler uses it to pass what it learned,
// e.g. an authentication middleware:
//
//	func auth(next http.Handler) http.Handler {
//		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
//			user, ok := checkSession(r)
//			if !ok {
//				http.Error(w, "forbidden", http.StatusForbidden)
//				return
//			}
//			ctx := wsgi.WithEnviron(r.Context(), map[string]string{
//				"REMOTE_USER": user,
//				"AUTH_TYPE":   "session",
//			})
//			next.ServeHTTP(w, r.WithContext(ctx))
//		})
//	}
//
// The app then finds environ["REMOTE_USER"].
func WithEnviron(ctx context.Context, env map[string]string) context.Context {
	old, _ := ctx.Value(environCtxKey{}).(map[string]string)
	// A fresh map: neither the caller's nor the one in ctx is changed,
	// since other requests' contexts may share them.
	m := make(map[string]string, len(old)+len(env))
	for k, v := range old {
		m[k] = v
	}
	for k, v := range env {
		if k == "" || strings.HasPrefix(k, "wsgi.") {
			continue
		}
		m[k] = v
	}
	return context.WithValue(ctx, environCtxKey{}, m)
}

// Refusal reasons returned by buildEnviron.
const (
	reasonBadEscape    = "wsgi: bad percent escape in path"
	reasonNUL          = "wsgi: NUL in path"
	reasonBadTarget    = "wsgi: bad request target"
	reasonOutsideMount = "wsgi: path outside the app's prefix"
)

// buildEnviron fills e from r for an app mounted at prefix ("" or "/x", no
// trailing slash), then adds extra (Options.Env, already validated) and the
// WithEnviron map from r's context. It returns an HTTP status (400 or 404)
// and a reason when the request must be refused before the app runs;
// status 0 means go on.
func buildEnviron(e *environ, r *http.Request, prefix string, extra map[string]string) (status int, reason string) {
	return buildEnvironFor(e, r, prefix, extra, directPeer(r))
}

// buildEnvironFor is buildEnviron with the client given: p differs from
// the connection's peer behind a trusted proxy.
func buildEnvironFor(e *environ, r *http.Request, prefix string, extra map[string]string, p peer) (status int, reason string) {
	e.reset()

	scriptName, pathInfo, status, reason := splitPath(r, prefix)
	if status != 0 {
		return status, reason
	}

	e.addKnown(envRequestMethod, r.Method)
	e.addKnown(envScriptName, scriptName)
	e.addKnown(envPathInfo, pathInfo)
	e.addKnown(envQueryString, r.URL.RawQuery)
	if r.RequestURI != "" {
		e.addKnown(envRequestURI, r.RequestURI)
	} else {
		// A request made by http.NewRequest, not read by a server.
		e.addKnown(envRequestURI, r.URL.RequestURI())
	}
	e.addKnown(envServerProtocol, r.Proto)

	if ct := r.Header["Content-Type"]; len(ct) > 0 {
		e.addKnown(envContentType, ct[0])
	}
	switch _, declared := r.Header["Content-Length"]; {
	case r.ContentLength > 0:
		e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(envContentLength))
		start := e.beginValue()
		e.buf = strconv.AppendInt(e.buf, r.ContentLength, 10)
		e.endValue(start)
	case r.ContentLength == 0 && declared:
		e.addKnown(envContentLength, "0")
	}

	e.addServer(r)

	e.addKnown(envRemoteAddr, p.addr)
	if p.port != "" {
		e.addKnown(envRemotePort, p.port)
	}

	if p.https {
		e.addKnown(envHTTPS, "on")
		e.addKnown(envURLScheme, "https")
	} else {
		e.addKnown(envURLScheme, "http")
	}

	if r.Host != "" {
		e.addKnown(envHTTPHost, r.Host)
	}
	for name, values := range r.Header {
		e.addHeader(name, values)
	}
	if len(r.TransferEncoding) > 0 {
		// net/http moves Transfer-Encoding out of r.Header; apps that
		// decide from it whether a body exists expect it, as under
		// gunicorn, Werkzeug and uvicorn.
		e.add("HTTP_TRANSFER_ENCODING", strings.Join(r.TransferEncoding, ", "))
	}

	for k, v := range extra {
		if k != "" && !strings.HasPrefix(k, "wsgi.") {
			e.add(k, v)
		}
	}
	if m, _ := r.Context().Value(environCtxKey{}).(map[string]string); m != nil {
		for k, v := range m {
			if k != "" && !strings.HasPrefix(k, "wsgi.") {
				e.add(k, v)
			}
		}
	}
	return 0, ""
}

// addServer adds SERVER_NAME and SERVER_PORT.
func (e *environ) addServer(r *http.Request) {
	name, port, portNum := serverAddr(r)
	e.addKnown(envServerName, name)
	if port == "" {
		e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(envServerPort))
		start := e.beginValue()
		e.buf = strconv.AppendInt(e.buf, int64(portNum), 10)
		e.endValue(start)
		return
	}
	e.addKnown(envServerPort, port)
}

// serverAddr gives the server's name and port: from r.Host, falling back
// to the address the connection came in on. The port is in port, or, to
// spare an allocation, only in portNum when port is "".
func serverAddr(r *http.Request) (name, port string, portNum int) {
	name, port = splitHost(r.Host)
	var local net.Addr
	if name == "" || port == "" {
		local, _ = r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	}
	if name == "" {
		name = "localhost"
		if a, ok := local.(*net.TCPAddr); ok && a.IP != nil {
			name = a.IP.String()
		} else if local != nil {
			if h, _, err := net.SplitHostPort(local.String()); err == nil && h != "" {
				name = h
			}
		}
	}
	if port != "" {
		n, _ := strconv.Atoi(port)
		return name, port, n
	}
	if a, ok := local.(*net.TCPAddr); ok && a.Port != 0 {
		return name, "", a.Port
	}
	if local != nil {
		if _, p, err := net.SplitHostPort(local.String()); err == nil && isDigits(p) {
			n, _ := strconv.Atoi(p)
			return name, p, n
		}
	}
	if r.TLS != nil {
		return name, "443", 443
	}
	return name, "80", 80
}

// splitHost splits a Host header into name and port without allocating
// (net.SplitHostPort allocates its error for the common port-less Host).
// "[::1]:8080" gives "::1" and "8080"; the port is "" when absent or not
// a number.
func splitHost(host string) (name, port string) {
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return host, ""
		}
		name, rest := host[1:end], host[end+1:]
		if p, ok := strings.CutPrefix(rest, ":"); ok && isDigits(p) {
			return name, p
		}
		return name, ""
	}
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.IndexByte(host[:i], ':') >= 0 {
		// No port, or an unbracketed IPv6 address.
		return host, ""
	}
	if p := host[i+1:]; isDigits(p) {
		return host[:i], p
	}
	return host[:i], ""
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// splitPath derives SCRIPT_NAME and PATH_INFO so that together they give
// the path the client sent, percent-decoded, even when an http.StripPrefix
// in front of the handler has removed part of r.URL.Path.
func splitPath(r *http.Request, prefix string) (scriptName, pathInfo string, status int, reason string) {
	urlPath := r.URL.Path
	client, status, reason := clientPath(r)
	if status != 0 {
		return "", "", status, reason
	}
	if strings.IndexByte(urlPath, 0) >= 0 {
		return "", "", http.StatusBadRequest, reasonNUL
	}

	// What the client sent ends with what the handler sees unless a
	// middleware rewrote the path; the difference is what StripPrefix
	// (or the like) removed, the mount point in front of ours.
	var mount string
	if strings.HasSuffix(client, urlPath) {
		mount = client[:len(client)-len(urlPath)]
		if mount != "" && urlPath != "" && urlPath[0] != '/' && mount[len(mount)-1] == '/' {
			// StripPrefix("/mnt/") leaves "x" of "/mnt/x": give the slash
			// back to the path, as SCRIPT_NAME should not end with one.
			mount = mount[:len(mount)-1]
			urlPath = client[len(mount):]
		}
	} else {
		// Rewritten: the client's path tells nothing about the mount.
		client = urlPath
	}

	rest := urlPath
	if prefix != "" {
		var ok bool
		rest, ok = strings.CutPrefix(urlPath, prefix)
		if !ok || (rest != "" && rest[0] != '/') {
			return "", "", http.StatusNotFound, reasonOutsideMount
		}
	}
	// Slicing client rather than concatenating mount+prefix keeps this
	// allocation-free; both spell the same bytes.
	return client[:len(client)-len(rest)], rest, 0, ""
}

// clientPath returns the path of r as the client sent it, percent-decoded.
func clientPath(r *http.Request) (path string, status int, reason string) {
	uri := r.RequestURI
	var err error
	switch {
	case uri == "":
		// Made by http.NewRequest: r.URL is all there is.
		return r.URL.Path, 0, ""
	case uri == "*":
		path = "*"
	case uri[0] == '/':
		// Origin form, by far the most common: decode it here, as
		// url.ParseRequestURI would allocate a URL.
		raw, _, _ := strings.Cut(uri, "?")
		if path, err = unescapePath(raw); err != nil {
			return "", http.StatusBadRequest, reasonBadEscape
		}
	default:
		// Absolute form ("http://host/p") or authority form (CONNECT).
		u, err := url.ParseRequestURI(uri)
		if err != nil {
			return "", http.StatusBadRequest, reasonBadTarget
		}
		path = u.Path
	}
	if strings.IndexByte(path, 0) >= 0 {
		return "", http.StatusBadRequest, reasonNUL
	}
	return path, 0, ""
}

// unescapePath decodes %XX escapes byte-wise, like url.PathUnescape ('+'
// stays '+'). The result is bytes, not necessarily UTF-8; it allocates
// only when s has an escape.
func unescapePath(s string) (string, error) {
	n := strings.Count(s, "%")
	if n == 0 {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s) - 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) {
				return "", url.EscapeError(s[i:])
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", url.EscapeError(s[i : i+3])
			}
			c = hi<<4 | lo
			i += 2
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
