package wsgi

import (
	"fmt"
	"math"
	"net/http"
	"net/textproto"
	"strings"
)

// responseHead is a validated status line and header list from start_response.
type responseHead struct {
	status        int         // 100..999, never 1xx
	header        http.Header // canonical keys (textproto.CanonicalMIMEHeaderKey); values in app order per key
	contentLength int64       // -1 when the app sent none
}

// isTchar reports RFC 9110 token characters. A table keeps the per-byte
// check to one load, since every response header name goes through it.
var isTchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// isFieldByte reports bytes allowed in a header value or reason phrase:
// HTAB, SP, visible ASCII and obs-text. Everything else is a control
// character that could split or corrupt the HTTP/1.1 message.
func isFieldByte(c byte) bool {
	return c >= ' ' && c != 0x7f || c == '\t'
}

// parseStatus validates a WSGI status string such as "200 OK" and returns its code.
func parseStatus(status string) (int, error) {
	// Exactly three digits and a space: net/http panics on codes outside
	// 100..999, and a looser parse would let "2000" or " 200" through.
	if len(status) < 4 || status[3] != ' ' {
		return 0, fmt.Errorf("wsgi: invalid status %q: want three digits, a space and a reason phrase", status)
	}
	code := 0
	for i := range 3 {
		c := status[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("wsgi: invalid status %q: want three digits, a space and a reason phrase", status)
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return 0, fmt.Errorf("wsgi: invalid status %q: code must be 100..999", status)
	}
	for i := 4; i < len(status); i++ {
		if !isFieldByte(status[i]) {
			return 0, fmt.Errorf("wsgi: invalid status %q: control character %q in reason phrase", status, status[i])
		}
	}
	// An interim response would leave the client waiting for a final one
	// that never comes.
	if code < 200 {
		return 0, fmt.Errorf("wsgi: 1xx status %q cannot be a final response", status)
	}
	return code, nil
}

// validateHeader checks one header (name, value) pair. It does not know about the other headers.
func validateHeader(name, value string) error {
	_, _, err := checkHeader(name, value)
	return err
}

// checkHeader is validateHeader that also hands back a parsed
// Content-Length, so parseResponseHead need not parse it twice.
func checkHeader(name, value string) (isContentLength bool, n int64, err error) {
	if name == "" {
		return false, 0, fmt.Errorf("wsgi: empty header name")
	}
	for i := 0; i < len(name); i++ {
		if !isTchar[name[i]] {
			return false, 0, fmt.Errorf("wsgi: invalid header name %q: character %q is not allowed", name, name[i])
		}
	}
	if isHopByHop(name) {
		return false, 0, fmt.Errorf("wsgi: hop-by-hop header %q is not allowed from a wsgi app", name)
	}
	for i := 0; i < len(value); i++ {
		if !isFieldByte(value[i]) {
			return false, 0, fmt.Errorf("wsgi: invalid value %q for header %q: control character %q", value, name, value[i])
		}
	}
	if len(name) == len("Content-Length") && strings.EqualFold(name, "Content-Length") {
		n, ok := parseContentLength(value)
		if !ok {
			return false, 0, fmt.Errorf("wsgi: invalid content-length %q: want a non-negative decimal integer", value)
		}
		return true, n, nil
	}
	return false, 0, nil
}

// isHopByHop reports the headers PEP 3333 reserves for the server, plus
// Proxy-Connection. Switching on length first skips most comparisons.
func isHopByHop(name string) bool {
	switch len(name) {
	case 2:
		return strings.EqualFold(name, "TE")
	case 7:
		return strings.EqualFold(name, "Trailer") || strings.EqualFold(name, "Upgrade")
	case 10:
		return strings.EqualFold(name, "Connection") || strings.EqualFold(name, "Keep-Alive")
	case 16:
		return strings.EqualFold(name, "Proxy-Connection")
	case 17:
		return strings.EqualFold(name, "Transfer-Encoding")
	case 18:
		return strings.EqualFold(name, "Proxy-Authenticate")
	case 19:
		return strings.EqualFold(name, "Proxy-Authorization")
	}
	return false
}

// parseContentLength accepts only 1*DIGIT that fits in int64. strconv
// would also accept a sign, which net/http would then treat differently.
func parseContentLength(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// parseResponseHead validates status and headers and builds the head.
// headers is the flat list name0, value0, name1, value1, ... in app order.
func parseResponseHead(status string, headers []string) (responseHead, error) {
	return parseResponseHeadInto(nil, status, headers)
}

// parseResponseHeadInto is parseResponseHead reusing dst (cleared) as the
// header map when it is not nil.
func parseResponseHeadInto(dst http.Header, status string, headers []string) (responseHead, error) {
	code, err := parseStatus(status)
	if err != nil {
		return responseHead{}, err
	}
	return responseHeadOf(dst, code, headers)
}

// parseASGIResponseHead is parseResponseHead for an ASGI status, an int.
func parseASGIResponseHead(status int64, headers []string) (responseHead, error) {
	switch {
	case status < 100 || status > 999:
		return responseHead{}, fmt.Errorf("wsgi: invalid status %d: code must be 100..999", status)
	case status < 200:
		return responseHead{}, fmt.Errorf("wsgi: 1xx status %d cannot be a final response", status)
	}
	return responseHeadOf(nil, int(status), headers)
}

// responseHeadOf validates headers and makes the head of a response with
// status code (already checked), reusing dst as parseResponseHeadInto does.
func responseHeadOf(dst http.Header, code int, headers []string) (responseHead, error) {
	if len(headers)%2 != 0 {
		return responseHead{}, fmt.Errorf("wsgi: header list has odd length %d", len(headers))
	}
	n := len(headers) / 2
	h := dst
	if h == nil {
		h = make(http.Header, n)
	} else {
		clear(h)
	}
	// One backing array for all first values saves an allocation per key;
	// the capacity limit makes a repeated key's append copy instead of
	// overwriting the next key's value.
	vals := make([]string, n)
	contentLength := int64(-1)
	for i := 0; i < len(headers); i += 2 {
		name, value := headers[i], headers[i+1]
		isCL, cl, err := checkHeader(name, value)
		if err != nil {
			return responseHead{}, err
		}
		if isCL {
			// Differing lengths would make the framing ambiguous; equal
			// ones are harmless but must reach the wire only once.
			if contentLength >= 0 {
				if cl != contentLength {
					return responseHead{}, fmt.Errorf("wsgi: conflicting content-length headers %q and %q", h["Content-Length"][0], value)
				}
				continue
			}
			contentLength = cl
		}
		key := textproto.CanonicalMIMEHeaderKey(name)
		if vv := h[key]; vv != nil {
			h[key] = append(vv, value)
			continue
		}
		vals[0] = value
		h[key] = vals[:1:1]
		vals = vals[1:]
	}
	return responseHead{status: code, header: h, contentLength: contentLength}, nil
}
