package wsgi

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// parseEnviron parses the packed format the way C does, byte for byte.
func parseEnviron(buf []byte) (map[string]string, int, error) {
	m := map[string]string{}
	n := 0
	str := func() (string, error) {
		if len(buf) < 4 {
			return "", errors.New("truncated length")
		}
		l := binary.LittleEndian.Uint32(buf)
		buf = buf[4:]
		if uint64(len(buf)) < uint64(l) {
			return "", fmt.Errorf("length %d past the end (%d left)", l, len(buf))
		}
		s := string(buf[:l])
		buf = buf[l:]
		return s, nil
	}
	for len(buf) > 0 {
		if len(buf) < 2 {
			return nil, n, errors.New("trailing garbage")
		}
		id := binary.LittleEndian.Uint16(buf)
		buf = buf[2:]
		var key string
		if id == otherKey {
			k, err := str()
			if err != nil {
				return nil, n, fmt.Errorf("entry %d key: %w", n, err)
			}
			key = k
		} else {
			if int(id) >= len(knownEnvironKeys) {
				return nil, n, fmt.Errorf("entry %d: unknown id %d", n, id)
			}
			key = knownEnvironKeys[id]
		}
		v, err := str()
		if err != nil {
			return nil, n, fmt.Errorf("entry %d value: %w", n, err)
		}
		m[key] = v
		n++
	}
	return m, n, nil
}

// decodeEnviron parses a packed environ; later entries win, as in a dict.
func decodeEnviron(t testing.TB, buf []byte) map[string]string {
	t.Helper()
	m, _, err := parseEnviron(buf)
	require.NoError(t, err)
	return m
}

func TestEnvironConstants(t *testing.T) {
	want := map[int]string{
		envRequestMethod: "REQUEST_METHOD", envScriptName: "SCRIPT_NAME",
		envPathInfo: "PATH_INFO", envQueryString: "QUERY_STRING",
		envContentType: "CONTENT_TYPE", envContentLength: "CONTENT_LENGTH",
		envServerName: "SERVER_NAME", envServerPort: "SERVER_PORT",
		envServerProtocol: "SERVER_PROTOCOL", envRemoteAddr: "REMOTE_ADDR",
		envRemotePort: "REMOTE_PORT", envRequestURI: "REQUEST_URI",
		envHTTPS: "HTTPS", envURLScheme: "wsgi.url_scheme",
		envRemoteUser: "REMOTE_USER", envAuthType: "AUTH_TYPE",
		envHTTPHost: "HTTP_HOST", envHTTPCookie: "HTTP_COOKIE",
	}
	for id, k := range want {
		assert.Equal(t, k, knownEnvironKeys[id], "id %d", id)
	}
	assert.Less(t, len(knownEnvironKeys), otherKey)
	for _, k := range knownEnvironKeys[16:] {
		assert.True(t, strings.HasPrefix(k, "HTTP_"), k)
		if k == "HTTP_HOST" {
			continue // r.Host, not a header
		}
		assert.Equal(t, hdrOther, headerID(strings.ReplaceAll(k[5:], "_", "-")), k)
	}
	// Every known HTTP_* key but HTTP_HOST is reachable from its header.
	assert.Len(t, headerEnvironIDs, len(knownEnvironKeys)-16-1+4)
}

func TestEnvironRoundTrip(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	var e environ
	for round := 0; round < 2; round++ { // the second round reuses buf
		e.reset()
		e.add(string(all), string(all))
		e.add("", "")
		e.add("REQUEST_METHOD", "GET")  // known: short form
		e.add("HTTP_X_NEW", "\xff\x00") // unknown: long form
		e.addKnown(envPathInfo, string(all))
		e.addKnown(envQueryString, "")
		e.add("later", "one")
		e.add("later", "two")
		got := decodeEnviron(t, e.bytes())
		assert.Equal(t, map[string]string{
			string(all):      string(all),
			"":               "",
			"REQUEST_METHOD": "GET",
			"HTTP_X_NEW":     "\xff\x00",
			"PATH_INFO":      string(all),
			"QUERY_STRING":   "",
			"later":          "two",
		}, got)
		assert.Equal(t, 8, e.len())
	}
	// The known key took 2+4+3 bytes.
	e.reset()
	e.add("REQUEST_METHOD", "GET")
	assert.Equal(t, []byte{0, 0, 3, 0, 0, 0, 'G', 'E', 'T'}, e.bytes())
	e.reset()
	e.add("k", "v")
	assert.Equal(t, []byte{0xff, 0xff, 1, 0, 0, 0, 'k', 1, 0, 0, 0, 'v'}, e.bytes())

	for _, bad := range [][]byte{
		{0},                           // half an id
		{0, 0, 3, 0, 0, 0, 'G', 'E'},  // short value
		{0, 0, 3, 0, 0},               // short length
		{0xff, 0xff, 1, 0, 0, 0, 'k'}, // no value
		{0xfe, 0xff, 0, 0, 0, 0},      // unknown id
		{0, 0, 0, 0, 0, 0, 7},         // trailing garbage
	} {
		_, _, err := parseEnviron(bad)
		assert.Error(t, err, "%v", bad)
	}
}

// build runs buildEnviron and decodes the result.
func build(t *testing.T, r *http.Request, prefix string, extra map[string]string) (int, string, map[string]string) {
	t.Helper()
	var e environ
	status, reason := buildEnviron(&e, r, prefix, extra)
	if status != 0 {
		return status, reason, nil
	}
	m, n, err := parseEnviron(e.bytes())
	require.NoError(t, err)
	require.Equal(t, e.len(), n)
	return 0, "", m
}

type environCase struct {
	name   string
	req    func() *http.Request
	prefix string
	extra  map[string]string
	status int               // 0: go on
	want   map[string]string // keys that must have these values
	absent []string          // keys that must be missing
}

func runEnvironCases(t *testing.T, cases []environCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, reason, got := build(t, c.req(), c.prefix, c.extra)
			require.Equal(t, c.status, status, reason)
			if status != 0 {
				assert.True(t, strings.HasPrefix(reason, "wsgi: "), reason)
				return
			}
			for k, v := range c.want {
				gv, ok := got[k]
				if assert.True(t, ok, "missing %s", k) {
					assert.Equal(t, v, gv, k)
				}
			}
			for _, k := range c.absent {
				assert.NotContains(t, got, k)
			}
		})
	}
}

func get(target string) func() *http.Request {
	return func() *http.Request { return httptest.NewRequest("GET", target, nil) }
}

func TestBuildEnvironBasics(t *testing.T) {
	runEnvironCases(t, []environCase{{
		name: "plain GET",
		req:  get("/a/b?x=1&y=%20"),
		want: map[string]string{
			"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1",
			"SCRIPT_NAME": "", "PATH_INFO": "/a/b",
			"QUERY_STRING": "x=1&y=%20", "REQUEST_URI": "/a/b?x=1&y=%20",
			"SERVER_NAME": "example.com", "SERVER_PORT": "80",
			"REMOTE_ADDR": "192.0.2.1", "REMOTE_PORT": "1234",
			"wsgi.url_scheme": "http", "HTTP_HOST": "example.com",
		},
		absent: []string{"HTTPS", "CONTENT_TYPE", "CONTENT_LENGTH", "wsgi.version", "wsgi.input"},
	}, {
		name: "raw query",
		req:  get("/?a=%20&b"),
		want: map[string]string{"QUERY_STRING": "a=%20&b", "PATH_INFO": "/"},
	}, {
		name: "no query",
		req:  get("/x"),
		want: map[string]string{"QUERY_STRING": "", "REQUEST_URI": "/x"},
	}, {
		name: "method and protocol",
		req: func() *http.Request {
			r := httptest.NewRequest("DELETE", "/x", nil)
			r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.0", 1, 0
			return r
		},
		want: map[string]string{"REQUEST_METHOD": "DELETE", "SERVER_PROTOCOL": "HTTP/1.0"},
	}, {
		name: "NewRequest without RequestURI",
		req: func() *http.Request {
			r, _ := http.NewRequest("GET", "http://h.test/p%20q?z=%41", nil)
			return r
		},
		want: map[string]string{
			"REQUEST_URI": "/p%20q?z=%41", "PATH_INFO": "/p q", "SCRIPT_NAME": "",
			"REMOTE_ADDR": "", "SERVER_NAME": "h.test", "SERVER_PORT": "80",
		},
		absent: []string{"REMOTE_PORT"},
	}, {
		name: "REQUEST_URI as sent",
		req: func() *http.Request {
			r := httptest.NewRequest("GET", "/a/./b//c?q", nil)
			r.URL.Path = "/a/b/c" // as if cleaned by a middleware
			return r
		},
		want: map[string]string{"REQUEST_URI": "/a/./b//c?q"},
	}})
}

func TestBuildEnvironPath(t *testing.T) {
	runEnvironCases(t, []environCase{{
		name: "utf-8 bytes",
		req:  get("/caf%C3%A9"),
		want: map[string]string{"PATH_INFO": "/caf\xc3\xa9", "SCRIPT_NAME": ""},
	}, {
		name: "raw latin-1 byte",
		req:  get("/x%ff"),
		want: map[string]string{"PATH_INFO": "/x\xff"},
	}, {
		name: "encoded slash",
		req:  get("/a%2Fb"),
		want: map[string]string{"PATH_INFO": "/a/b"},
	}, {
		name: "plus stays plus",
		req:  get("/a+b%2B"),
		want: map[string]string{"PATH_INFO": "/a+b+"},
	}, {
		name:   "NUL",
		req:    get("/a%00b"),
		status: 400,
	}, {
		name: "bad escape",
		req: func() *http.Request {
			r := httptest.NewRequest("GET", "/x", nil)
			r.RequestURI = "/a%zz" // a server would refuse this; a proxy may not
			return r
		},
		status: 400,
	}, {
		name: "truncated escape",
		req: func() *http.Request {
			r := httptest.NewRequest("GET", "/x", nil)
			r.RequestURI = "/a%4"
			return r
		},
		status: 400,
	}, {
		name: "NUL only in r.URL.Path",
		req: func() *http.Request {
			r := httptest.NewRequest("GET", "/x", nil)
			r.URL.Path = "/\x00"
			return r
		},
		status: 400,
	}, {
		name: "absolute form",
		req:  get("http://other.test:8080/p%20q?x"),
		want: map[string]string{
			"PATH_INFO": "/p q", "SCRIPT_NAME": "", "QUERY_STRING": "x",
			"REQUEST_URI": "http://other.test:8080/p%20q?x",
			"HTTP_HOST":   "other.test:8080", "SERVER_NAME": "other.test", "SERVER_PORT": "8080",
		},
	}, {
		name: "absolute form without path",
		req:  get("http://other.test"),
		want: map[string]string{"PATH_INFO": "", "SCRIPT_NAME": ""},
	}, {
		name: "OPTIONS *",
		req: func() *http.Request {
			r := httptest.NewRequest("OPTIONS", "/", nil)
			r.RequestURI, r.URL = "*", &url.URL{Path: "*"}
			return r
		},
		want: map[string]string{"PATH_INFO": "*", "SCRIPT_NAME": "", "REQUEST_URI": "*"},
	}, {
		name: "OPTIONS * under a prefix",
		req: func() *http.Request {
			r := httptest.NewRequest("OPTIONS", "/", nil)
			r.RequestURI, r.URL = "*", &url.URL{Path: "*"}
			return r
		},
		prefix: "/app",
		status: 404,
	}, {
		name:   "prefix exactly",
		req:    get("/app?x"),
		prefix: "/app",
		want:   map[string]string{"SCRIPT_NAME": "/app", "PATH_INFO": ""},
	}, {
		name:   "prefix slash",
		req:    get("/app/"),
		prefix: "/app",
		want:   map[string]string{"SCRIPT_NAME": "/app", "PATH_INFO": "/"},
	}, {
		name:   "prefix sub path",
		req:    get("/app/x"),
		prefix: "/app",
		want:   map[string]string{"SCRIPT_NAME": "/app", "PATH_INFO": "/x"},
	}, {
		name:   "prefix escaped",
		req:    get("/%61pp/caf%C3%A9"),
		prefix: "/app",
		want:   map[string]string{"SCRIPT_NAME": "/app", "PATH_INFO": "/caf\xc3\xa9"},
	}, {
		name:   "prefix not a segment",
		req:    get("/apple"),
		prefix: "/app",
		status: 404,
	}, {
		name:   "prefix other",
		req:    get("/other"),
		prefix: "/app",
		status: 404,
	}, {
		name:   "prefix root",
		req:    get("/"),
		prefix: "/app",
		status: 404,
	}, {
		name: "rewritten by a middleware",
		req: func() *http.Request {
			r := httptest.NewRequest("GET", "/old/x", nil)
			r.URL.Path = "/new/x"
			return r
		},
		want: map[string]string{"SCRIPT_NAME": "", "PATH_INFO": "/new/x", "REQUEST_URI": "/old/x"},
	}, {
		name: "rewritten by a middleware, prefix",
		req: func() *http.Request {
			r := httptest.NewRequest("GET", "/old/x", nil)
			r.URL.Path = "/app/x"
			return r
		},
		prefix: "/app",
		want:   map[string]string{"SCRIPT_NAME": "/app", "PATH_INFO": "/x"},
	}})
}

// serveEnviron runs h (which wraps the buildEnviron handler) on r and
// returns what buildEnviron produced.
func serveEnviron(t *testing.T, wrap func(http.Handler) http.Handler, r *http.Request, prefix string) (int, map[string]string) {
	t.Helper()
	var status int
	var got map[string]string
	called := false
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called = true
		status, _, got = build(t, r, prefix, nil)
	})
	rec := httptest.NewRecorder()
	wrap(inner).ServeHTTP(rec, r)
	if !called {
		return rec.Code, nil
	}
	return status, got
}

func TestBuildEnvironStripPrefix(t *testing.T) {
	strip := func(p string) func(http.Handler) http.Handler {
		return func(h http.Handler) http.Handler { return http.StripPrefix(p, h) }
	}
	mux := func(h http.Handler) http.Handler {
		m := http.NewServeMux()
		m.Handle("/mnt/", http.StripPrefix("/mnt", h))
		m.HandleFunc("/go", func(http.ResponseWriter, *http.Request) {})
		return m
	}
	cases := []struct {
		name          string
		wrap          func(http.Handler) http.Handler
		target        string
		prefix        string
		status        int
		script, pinfo string
	}{
		{"strip", strip("/mnt"), "/mnt/a%20b?q=1", "", 0, "/mnt", "/a b"},
		{"strip exact", strip("/mnt"), "/mnt", "", 0, "/mnt", ""},
		{"strip escaped slash", strip("/mnt"), "/mnt/a%2Fb", "", 0, "/mnt", "/a/b"},
		{"strip escaped rest", strip("/mnt"), "/mnt/%41%2f", "", 0, "/mnt", "/A/"},
		{"strip refuses escaped mount", strip("/mnt"), "/m%6Et/x", "", 404, "", ""}, // StripPrefix's own choice
		{"strip with trailing slash", strip("/mnt/"), "/mnt/x", "", 0, "/mnt", "/x"},
		{"strip and prefix", strip("/mnt"), "/mnt/app/a%20b", "/app", 0, "/mnt/app", "/a b"},
		{"strip and prefix exact", strip("/mnt"), "/mnt/app", "/app", 0, "/mnt/app", ""},
		{"strip and prefix outside", strip("/mnt"), "/mnt/apple", "/app", 404, "", ""},
		{"strip repeated", strip("/a"), "/a/a/b", "", 0, "/a", "/a/b"},
		{"mux", mux, "/mnt/caf%C3%A9?x=1", "", 0, "/mnt", "/caf\xc3\xa9"},
		{"mux and prefix", mux, "/mnt/app/x", "/app", 0, "/mnt/app", "/x"},
		{"mux root", mux, "/mnt/", "", 0, "/mnt", "/"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, got := serveEnviron(t, c.wrap, httptest.NewRequest("GET", c.target, nil), c.prefix)
			require.Equal(t, c.status, status)
			if status == 0 {
				assert.Equal(t, c.script, got["SCRIPT_NAME"])
				assert.Equal(t, c.pinfo, got["PATH_INFO"])
				assert.Equal(t, c.target, got["REQUEST_URI"])
			}
		})
	}
}

func TestBuildEnvironBody(t *testing.T) {
	runEnvironCases(t, []environCase{{
		name: "content type and length",
		req: func() *http.Request {
			r := httptest.NewRequest("POST", "/", strings.NewReader("a=1"))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("Content-Length", "3")
			return r
		},
		want:   map[string]string{"CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": "3"},
		absent: []string{"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"},
	}, {
		name: "large length",
		req: func() *http.Request {
			r := httptest.NewRequest("PUT", "/", nil)
			r.ContentLength = 1 << 40
			return r
		},
		want: map[string]string{"CONTENT_LENGTH": "1099511627776"},
	}, {
		name: "declared zero",
		req: func() *http.Request {
			r := httptest.NewRequest("POST", "/", nil)
			r.Header.Set("Content-Length", "0")
			return r
		},
		want: map[string]string{"CONTENT_LENGTH": "0"},
	}, {
		name:   "no body, no header",
		req:    get("/"),
		absent: []string{"CONTENT_LENGTH", "CONTENT_TYPE"},
	}, {
		name: "empty content type kept",
		req: func() *http.Request {
			r := httptest.NewRequest("POST", "/", nil)
			r.Header["Content-Type"] = []string{""}
			return r
		},
		want: map[string]string{"CONTENT_TYPE": ""},
	}, {
		name: "chunked",
		req: func() *http.Request {
			r := httptest.NewRequest("POST", "/", strings.NewReader("abc"))
			r.ContentLength = -1
			r.TransferEncoding = []string{"chunked"}
			return r
		},
		// gunicorn, Werkzeug and uvicorn pass it on: some apps decide
		// from it whether there is a body.
		want:   map[string]string{"HTTP_TRANSFER_ENCODING": "chunked"},
		absent: []string{"CONTENT_LENGTH"},
	}, {
		name: "spoofing headers never make HTTP_CONTENT_*",
		req: func() *http.Request {
			r := httptest.NewRequest("POST", "/", nil)
			r.Header["Content_Length"] = []string{"5"}
			r.Header["Content_Type"] = []string{"text/evil"}
			r.Header["content-length"] = []string{"5"}
			r.Header["content-type"] = []string{"text/evil"}
			return r
		},
		absent: []string{"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH", "CONTENT_TYPE", "CONTENT_LENGTH"},
	}})
}

type fakeAddr string

func (a fakeAddr) Network() string { return "unix" }
func (a fakeAddr) String() string  { return string(a) }

func TestBuildEnvironServer(t *testing.T) {
	withLocal := func(r *http.Request, a net.Addr) *http.Request {
		return r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, a))
	}
	tlsReq := func(target string) *http.Request {
		r := httptest.NewRequest("GET", target, nil)
		r.TLS = &tls.ConnectionState{}
		return r
	}
	hostReq := func(host string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = host
		return r
	}
	runEnvironCases(t, []environCase{{
		name: "host with port",
		req:  get("http://h.test:8080/"),
		want: map[string]string{"SERVER_NAME": "h.test", "SERVER_PORT": "8080", "HTTP_HOST": "h.test:8080"},
	}, {
		name: "host without port, local port",
		req: func() *http.Request {
			return withLocal(hostReq("h.test"), &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 8443})
		},
		want: map[string]string{"SERVER_NAME": "h.test", "SERVER_PORT": "8443"},
	}, {
		name: "host without port, non-TCP local address",
		req:  func() *http.Request { return withLocal(hostReq("h.test"), fakeAddr("/run/app.sock")) },
		want: map[string]string{"SERVER_NAME": "h.test", "SERVER_PORT": "80"},
	}, {
		name: "host without port, TLS",
		req:  func() *http.Request { return tlsReq("https://h.test/") },
		want: map[string]string{"SERVER_NAME": "h.test", "SERVER_PORT": "443", "HTTPS": "on", "wsgi.url_scheme": "https"},
	}, {
		name:   "no TLS",
		req:    get("/"),
		want:   map[string]string{"wsgi.url_scheme": "http"},
		absent: []string{"HTTPS"},
	}, {
		name: "IPv6 host with port",
		req:  func() *http.Request { return hostReq("[::1]:8080") },
		want: map[string]string{"SERVER_NAME": "::1", "SERVER_PORT": "8080", "HTTP_HOST": "[::1]:8080"},
	}, {
		name: "IPv6 host without port",
		req:  func() *http.Request { return hostReq("[2001:db8::1]") },
		want: map[string]string{"SERVER_NAME": "2001:db8::1", "SERVER_PORT": "80"},
	}, {
		name: "bad port",
		req:  func() *http.Request { return hostReq("h.test:http") },
		want: map[string]string{"SERVER_NAME": "h.test", "SERVER_PORT": "80"},
	}, {
		name: "empty host, local address",
		req: func() *http.Request {
			return withLocal(hostReq(""), &net.TCPAddr{IP: net.ParseIP("2001:db8::2"), Port: 9000})
		},
		want:   map[string]string{"SERVER_NAME": "2001:db8::2", "SERVER_PORT": "9000"},
		absent: []string{"HTTP_HOST"},
	}, {
		name: "empty host, no local address",
		req:  func() *http.Request { return hostReq("") },
		want: map[string]string{"SERVER_NAME": "localhost", "SERVER_PORT": "80"},
	}, {
		name: "IPv6 remote",
		req: func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = "[2001:db8::7]:5555"
			return r
		},
		want: map[string]string{"REMOTE_ADDR": "2001:db8::7", "REMOTE_PORT": "5555"},
	}, {
		name: "remote without port",
		req: func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = "192.0.2.9" // as middleware that strips the port leaves it
			return r
		},
		want:   map[string]string{"REMOTE_ADDR": "192.0.2.9"},
		absent: []string{"REMOTE_PORT"},
	}, {
		name: "unix socket peer",
		req: func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = "@" // net/http's RemoteAddr of an unnamed Unix-socket client
			return r
		},
		want:   map[string]string{"REMOTE_ADDR": ""}, // as under gunicorn
		absent: []string{"REMOTE_PORT"},
	}})
}

func TestBuildEnvironHeaders(t *testing.T) {
	runEnvironCases(t, []environCase{{
		name: "common and uncommon",
		req: func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("User-Agent", "ua")
			r.Header.Set("X-Custom-Thing", "c")
			r.Header.Set("Dnt", "1")
			r.Header["x-lower"] = []string{"l"} // hand-built, not canonical
			return r
		},
		want: map[string]string{
			"HTTP_USER_AGENT": "ua", "HTTP_X_CUSTOM_THING": "c", "HTTP_DNT": "1", "HTTP_X_LOWER": "l",
		},
	}, {
		name: "repeated",
		req: func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Add("Accept", "text/html")
			r.Header.Add("Accept", "*/*")
			r.Header.Add("X-Other", "1")
			r.Header.Add("X-Other", "2")
			r.Header.Add("X-Other", "3")
			return r
		},
		want: map[string]string{"HTTP_ACCEPT": "text/html, */*", "HTTP_X_OTHER": "1, 2, 3"},
	}, {
		name: "cookies",
		req: func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Add("Cookie", "a=1")
			r.Header.Add("Cookie", "b=2")
			return r
		},
		want: map[string]string{"HTTP_COOKIE": "a=1; b=2"},
	}, {
		name: "cookies, hand-built",
		req: func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header["cookie"] = []string{"a=1", "b=2"}
			return r
		},
		want: map[string]string{"HTTP_COOKIE": "a=1; b=2"},
	}, {
		name: "underscore spoofing",
		req: func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header["X-Forwarded-For"] = []string{"1.2.3.4"}
			r.Header["X_Forwarded_For"] = []string{"6.6.6.6"}
			r.Header["X-Forwarded_For"] = []string{"6.6.6.6"}
			r.Header["X_Custom"] = []string{"evil"}
			return r
		},
		want:   map[string]string{"HTTP_X_FORWARDED_FOR": "1.2.3.4"},
		absent: []string{"HTTP_X_CUSTOM"},
	}, {
		name: "httpoxy",
		req: func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Proxy", "http://evil.test")
			r.Header["proxy"] = []string{"http://evil.test"}
			return r
		},
		absent: []string{"HTTP_PROXY"},
	}, {
		name: "latin-1 bytes",
		req: func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("X-Name", "caf\xc3\xa9 \xff\x80")
			return r
		},
		want: map[string]string{"HTTP_X_NAME": "caf\xc3\xa9 \xff\x80"},
	}, {
		name: "odd names dropped",
		req: func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header["X.Dot"] = []string{"1"}
			r.Header["X Space"] = []string{"1"}
			r.Header[""] = []string{"1"}
			r.Header["X-\xe9"] = []string{"1"}
			r.Header["X-Empty"] = nil
			return r
		},
		absent: []string{"HTTP_X.DOT", "HTTP_X_DOT", "HTTP_X SPACE", "HTTP_", "HTTP_X_\xe9", "HTTP_X_\xc9", "HTTP_X_EMPTY"},
	}, {
		name: "empty value kept",
		req: func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header["X-Empty"] = []string{""}
			return r
		},
		want: map[string]string{"HTTP_X_EMPTY": ""},
	}, {
		name: "HTTP_HOST is r.Host",
		req: func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.Host = "real.test"
			r.Header["Host"] = []string{"fake.test"}
			r.Header["host"] = []string{"fake.test"}
			return r
		},
		want: map[string]string{"HTTP_HOST": "real.test", "SERVER_NAME": "real.test"},
	}})
}

func TestBuildEnvironOverrides(t *testing.T) {
	req := func(ctxEnv ...map[string]string) func() *http.Request {
		return func() *http.Request {
			r := httptest.NewRequest("GET", "/x", nil)
			r.Header.Set("X-Role", "header")
			ctx := r.Context()
			for _, m := range ctxEnv {
				ctx = WithEnviron(ctx, m)
			}
			return r.WithContext(ctx)
		}
	}
	extra := map[string]string{"APP_MODE": "prod", "HTTP_X_ROLE": "env", "SHARED": "env"}
	runEnvironCases(t, []environCase{{
		name:  "Env",
		req:   req(),
		extra: extra,
		want:  map[string]string{"APP_MODE": "prod", "HTTP_X_ROLE": "env", "SHARED": "env"},
	}, {
		name:  "Env wsgi. keys ignored",
		req:   req(),
		extra: map[string]string{"wsgi.url_scheme": "gopher", "": "x"},
		want:  map[string]string{"wsgi.url_scheme": "http"},
	}, {
		name: "WithEnviron wins",
		req: req(map[string]string{
			"REMOTE_USER": "alice", "AUTH_TYPE": "Bearer", "SHARED": "ctx",
			"PATH_INFO": "/override", "HTTP_X_ROLE": "ctx",
		}),
		extra: extra,
		want: map[string]string{
			"REMOTE_USER": "alice", "AUTH_TYPE": "Bearer", "SHARED": "ctx",
			"PATH_INFO": "/override", "HTTP_X_ROLE": "ctx", "APP_MODE": "prod",
		},
	}, {
		name: "WithEnviron wsgi. keys ignored",
		req:  req(map[string]string{"wsgi.url_scheme": "gopher", "wsgi.input": "x", "": "y", "K": "v"}),
		want: map[string]string{"wsgi.url_scheme": "http", "K": "v"},
		absent: []string{
			"wsgi.input", "",
		},
	}, {
		name: "WithEnviron merges, later wins",
		req: req(
			map[string]string{"A": "1", "B": "1"},
			map[string]string{"B": "2", "C": "2"},
		),
		want: map[string]string{"A": "1", "B": "2", "C": "2"},
	}})
}

func TestWithEnvironDoesNotMutate(t *testing.T) {
	first := map[string]string{"A": "1"}
	ctx1 := WithEnviron(context.Background(), first)
	ctx2 := WithEnviron(ctx1, map[string]string{"A": "2", "wsgi.x": "y"})
	first["A"] = "changed"
	assert.Equal(t, map[string]string{"A": "1"}, ctx1.Value(environCtxKey{}))
	assert.Equal(t, map[string]string{"A": "2"}, ctx2.Value(environCtxKey{}))
}

func TestBuildEnvironReuse(t *testing.T) {
	var e environ
	r := httptest.NewRequest("GET", "/a", nil)
	r.Header.Set("X-Big", strings.Repeat("x", 1000))
	require.Zero(t, func() int { s, _ := buildEnviron(&e, r, "", nil); return s }())
	first := len(e.bytes())
	status, _ := buildEnviron(&e, httptest.NewRequest("GET", "/b", nil), "", nil)
	require.Zero(t, status)
	got := decodeEnviron(t, e.bytes())
	assert.Less(t, len(e.bytes()), first)
	assert.NotContains(t, got, "HTTP_X_BIG")
	assert.Equal(t, "/b", got["PATH_INFO"])
	// A refused request leaves nothing behind from the last one.
	status, _ = buildEnviron(&e, httptest.NewRequest("GET", "/a%00", nil), "", nil)
	assert.Equal(t, 400, status)
	assert.Zero(t, e.len())
}

// TestBuildEnvironRealServer sends raw requests through net/http's server,
// which is what fills RequestURI, Host, RemoteAddr, the local address and
// the headers in production.
func TestBuildEnvironRealServer(t *testing.T) {
	got := make(chan map[string]string, 1)
	mux := http.NewServeMux()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e environ
		if status, reason := buildEnviron(&e, r, "/app", map[string]string{"E": "1"}); status != 0 {
			http.Error(w, reason, status)
			return
		}
		m, _, err := parseEnviron(e.bytes())
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		got <- m
	})
	mux.Handle("/mnt/", http.StripPrefix("/mnt", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	send := func(raw string) (string, map[string]string) {
		t.Helper()
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		require.NoError(t, err)
		defer conn.Close()
		_, err = io.WriteString(conn, raw)
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		resp.Body.Close()
		select {
		case m := <-got:
			return resp.Status, m
		default:
			return resp.Status, nil
		}
	}

	status, m := send("POST /mnt/app/caf%C3%A9%2Fx?a=%20 HTTP/1.1\r\n" +
		"Host: h.test\r\n" +
		"X-Forwarded-For: 1.2.3.4\r\n" +
		"X_Forwarded_For: 6.6.6.6\r\n" +
		"Proxy: http://evil.test\r\n" +
		"Cookie: a=1\r\nCookie: b=2\r\n" +
		"Content-Type: text/plain\r\n" +
		"Content-Length: 0\r\n" +
		"X-Latin: \xe9\r\n" +
		"Connection: close\r\n\r\n")
	require.NotNil(t, m, status)
	for k, v := range map[string]string{
		"REQUEST_METHOD": "POST", "SCRIPT_NAME": "/mnt/app", "PATH_INFO": "/caf\xc3\xa9/x",
		"QUERY_STRING": "a=%20", "REQUEST_URI": "/mnt/app/caf%C3%A9%2Fx?a=%20",
		"SERVER_NAME": "h.test", "SERVER_PORT": port, "SERVER_PROTOCOL": "HTTP/1.1",
		"REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "h.test", "HTTP_X_FORWARDED_FOR": "1.2.3.4",
		"HTTP_COOKIE": "a=1; b=2", "CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": "0",
		"HTTP_X_LATIN": "\xe9", "wsgi.url_scheme": "http", "E": "1",
	} {
		assert.Equal(t, v, m[k], k)
	}
	for _, k := range []string{"HTTP_PROXY", "HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH", "HTTPS"} {
		assert.NotContains(t, m, k)
	}
	assert.NotEmpty(t, m["REMOTE_PORT"])

	// Chunked: no CONTENT_LENGTH.
	_, m = send("POST /mnt/app/ HTTP/1.1\r\nHost: h.test:99\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	require.NotNil(t, m)
	assert.NotContains(t, m, "CONTENT_LENGTH")
	assert.Equal(t, "chunked", m["HTTP_TRANSFER_ENCODING"])
	assert.Equal(t, "99", m["SERVER_PORT"])
	assert.Equal(t, "/", m["PATH_INFO"])

	// Absolute form, HTTP/1.0 without Host.
	_, m = send("GET http://abs.test/mnt/app HTTP/1.1\r\nHost: ignored.test\r\nConnection: close\r\n\r\n")
	require.NotNil(t, m)
	assert.Equal(t, "/mnt/app", m["SCRIPT_NAME"])
	assert.Equal(t, "", m["PATH_INFO"])
	assert.Equal(t, "abs.test", m["SERVER_NAME"])
	_, m = send("GET /mnt/app/x HTTP/1.0\r\n\r\n")
	require.NotNil(t, m)
	assert.Equal(t, "127.0.0.1", m["SERVER_NAME"])
	assert.Equal(t, port, m["SERVER_PORT"])
	assert.NotContains(t, m, "HTTP_HOST")

	status, m = send("GET /mnt/apple HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n")
	assert.Nil(t, m)
	assert.Equal(t, "404 Not Found", status)
	status, m = send("GET /mnt/app/%00 HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n")
	assert.Nil(t, m)
	assert.Equal(t, "400 Bad Request", status)
}

func FuzzBuildEnviron(f *testing.F) {
	f.Add("GET", "/", "Accept", "*/*")
	f.Add("GET", "/app/caf%C3%A9?x=%20", "X-Forwarded-For", "1.2.3.4")
	f.Add("POST", "/app", "Cookie", "a=1")
	f.Add("GET", "/a%2Fb", "X_Forwarded_For", "6.6.6.6")
	f.Add("GET", "/%00", "Proxy", "http://evil")
	f.Add("GET", "http://h.test:80/app/x", "content-length", "5")
	f.Add("OPTIONS", "*", "Host", "x")
	f.Add("CONNECT", "h.test:443", "x.y", "\xff")
	f.Add("GET", "//x/y", "X-\xe9", "")
	f.Add("GET", "/a#b", "Content_Type", "x")
	f.Add("GET", "/a%zz", "X", "y")
	f.Add("GET", "/a/app/%41", "X", "y")
	f.Add("GET", "/abc", "X", "y")
	f.Fuzz(func(t *testing.T, method, target, headerName, headerValue string) {
		r, err := http.NewRequest(method, target, nil)
		if err != nil {
			return
		}
		r.Header[headerName] = []string{headerValue, headerValue}
		r.Header.Add(headerName, headerValue)
		r.RemoteAddr = headerValue

		// As a server does it: the client's path is that of target.
		client := r.URL.Path
		haveURI := false
		if u, err := url.ParseRequestURI(target); err == nil {
			r.URL, r.RequestURI, client, haveURI = u, target, u.Path, true
		}
		for _, prefix := range []string{"", "/app"} {
			checkFuzzEnviron(t, r, prefix, client, true)
			// Behind StripPrefix too, when it lets the request through.
			// Without a RequestURI (a request no server would build) the
			// stripped part cannot be known.
			for _, strip := range []string{"/a", "/a/"} {
				http.StripPrefix(strip, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
					checkFuzzEnviron(t, r, prefix, client, haveURI)
				})).ServeHTTP(httptest.NewRecorder(), r)
			}
		}

		// Or a RequestURI a server would refuse: anything goes but panics,
		// malformed output and bad keys.
		r.RequestURI = target
		for _, prefix := range []string{"", "/app"} {
			checkFuzzEnviron(t, r, prefix, client, false)
		}
	})
}

func checkFuzzEnviron(t *testing.T, r *http.Request, prefix, client string, checkPath bool) {
	var e environ
	status, reason := buildEnviron(&e, r, prefix, nil)
	if status != 0 {
		require.Contains(t, []int{400, 404}, status)
		require.True(t, strings.HasPrefix(reason, "wsgi: "))
		return
	}
	m, n, err := parseEnviron(e.bytes())
	require.NoError(t, err)
	require.Equal(t, e.len(), n)
	if checkPath {
		require.Equal(t, client, m["SCRIPT_NAME"]+m["PATH_INFO"], "prefix %q", prefix)
	}
	if prefix != "" {
		require.True(t, strings.HasSuffix(m["SCRIPT_NAME"], prefix), "SCRIPT_NAME %q", m["SCRIPT_NAME"])
	}
	require.NotContains(t, m, "HTTP_PROXY")
	require.NotContains(t, m, "HTTP_CONTENT_TYPE")
	require.NotContains(t, m, "HTTP_CONTENT_LENGTH")
	for k := range m {
		if name, ok := strings.CutPrefix(k, "HTTP_"); ok {
			require.NotEmpty(t, name)
			for i := 0; i < len(name); i++ {
				c := name[i]
				require.True(t, 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_', "key %q", k)
			}
		}
	}
}

// browserRequest is a typical page load from a current browser.
func browserRequest() *http.Request {
	r := httptest.NewRequest("GET", "/shop/products/42?ref=home&utm_source=newsletter", nil)
	r.Host = "www.example.com"
	r.RemoteAddr = "203.0.113.9:52144"
	h := r.Header
	h.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36")
	h.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8")
	h.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	h.Set("Accept-Language", "en-US,en;q=0.9,de;q=0.8")
	h.Set("Cache-Control", "max-age=0")
	h.Set("Connection", "keep-alive")
	h.Add("Cookie", "sessionid=8f14e45fceea167a5a36dedd4bea2543; csrftoken=c9f0f895fb98ab9159f51fd0297e236d")
	h.Add("Cookie", "theme=dark")
	h.Set("Referer", "https://www.example.com/shop/")
	h.Set("Sec-Ch-Ua", `"Chromium";v="126", "Google Chrome";v="126", "Not-A.Brand";v="99"`)
	h.Set("Sec-Ch-Ua-Mobile", "?0")
	h.Set("Sec-Ch-Ua-Platform", `"Linux"`)
	h.Set("Sec-Fetch-Dest", "document")
	h.Set("Sec-Fetch-Mode", "navigate")
	h.Set("Sec-Fetch-Site", "same-origin")
	h.Set("Sec-Fetch-User", "?1")
	h.Set("Upgrade-Insecure-Requests", "1")
	h.Set("If-None-Match", `W/"5e15153d-120f"`)
	h.Set("X-Forwarded-For", "198.51.100.17")
	h.Set("X-Forwarded-Proto", "https")
	h.Set("Priority", "u=0, i")
	h.Set("X-Request-Id", "4bf92f3577b34da6a3ce929d0e0e4736") // not a known key
	local := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 8080}
	ctx := context.WithValue(r.Context(), http.LocalAddrContextKey, local)
	ctx = WithEnviron(ctx, map[string]string{"REMOTE_USER": "alice", "AUTH_TYPE": "session"})
	return r.WithContext(ctx)
}

func BenchmarkBuildEnviron(b *testing.B) {
	r := browserRequest()
	extra := map[string]string{"APP_ENV": "production"}
	var e environ
	if status, reason := buildEnviron(&e, r, "/shop", extra); status != 0 {
		b.Fatal(reason)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(e.bytes())))
	for b.Loop() {
		buildEnviron(&e, r, "/shop", extra)
	}
}

func BenchmarkBuildEnvironEscaped(b *testing.B) {
	r := browserRequest()
	r.RequestURI = "/shop/caf%C3%A9/42"
	r.URL.Path = "/shop/caf\xc3\xa9/42"
	var e environ
	b.ReportAllocs()
	for b.Loop() {
		buildEnviron(&e, r, "/shop", nil)
	}
}
