package wsgi

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseStatus(t *testing.T) {
	good := []struct {
		status string
		code   int
	}{
		{"200 OK", 200},
		{"204 ", 204},
		{"404 Not Found", 404},
		{"301 Moved\tPermanently", 301},
		{"600 Custom", 600},
		{"999 Whatever", 999},
		{"200 Caf\xe9", 200},
		{"200 \x80\xff", 200},
		{"500 !~ odd: reason (phrase)", 500},
	}
	for _, tc := range good {
		t.Run(fmt.Sprintf("good/%q", tc.status), func(t *testing.T) {
			code, err := parseStatus(tc.status)
			require.NoError(t, err)
			assert.Equal(t, tc.code, code)
		})
	}

	bad := []struct {
		status string
		msg    string
	}{
		{"", "three digits"},
		{"200", "three digits"},
		{"20 OK", "three digits"},
		{"2000 OK", "three digits"},
		{" 200 OK", "three digits"},
		{"abc OK", "three digits"},
		{"2x0 OK", "three digits"},
		{"200\tOK", "three digits"},
		{"099 X", "100..999"},
		{"000 X", "100..999"},
		{"200 OK\r\nX-Evil: 1", "control character"},
		{"200 OK\n", "control character"},
		{"200 OK\r", "control character"},
		{"200 O\x00K", "control character"},
		{"200 \x7f", "control character"},
		{"200 \x1b[31m", "control character"},
		{"100 Continue", "1xx status"},
		{"101 Switching Protocols", "1xx status"},
		{"103 Early Hints", "1xx status"},
		{"199 X", "1xx status"},
	}
	for _, tc := range bad {
		t.Run(fmt.Sprintf("bad/%q", tc.status), func(t *testing.T) {
			code, err := parseStatus(tc.status)
			require.Error(t, err)
			assert.Zero(t, code)
			assert.True(t, strings.HasPrefix(err.Error(), "wsgi: "), err.Error())
			assert.Contains(t, err.Error(), tc.msg)
			assert.Contains(t, err.Error(), fmt.Sprintf("%q", tc.status))
		})
	}
}

func TestValidateHeaderName(t *testing.T) {
	good := []string{
		"Content-Type",
		"x",
		"X-Foo_Bar.Baz",
		"!#$%&'*+-.^_`|~0123456789abcxyzABCXYZ",
	}
	for _, name := range good {
		t.Run(fmt.Sprintf("good/%q", name), func(t *testing.T) {
			assert.NoError(t, validateHeader(name, "v"))
		})
	}

	bad := []string{
		"",
		"X Foo",
		"X-Foo:",
		"X:Foo",
		"X-Foo\r\n",
		"X-Foo\n",
		"X-Foo\x00",
		"X-Foo\t",
		"Caf\xe9",
		"X-\x7f",
		"X(Foo)",
		"X\"Foo\"",
		"X/Foo",
		"X@Foo",
		"X[Foo]",
		"X{Foo}",
		"X,Foo",
		"X;Foo",
		"X=Foo",
		"X?Foo",
		"X\\Foo",
		"X<Foo>",
	}
	for _, name := range bad {
		t.Run(fmt.Sprintf("bad/%q", name), func(t *testing.T) {
			err := validateHeader(name, "v")
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "wsgi: "), err.Error())
			if name != "" {
				assert.Contains(t, err.Error(), fmt.Sprintf("%q", name))
			}
		})
	}
}

func TestValidateHeaderValue(t *testing.T) {
	good := []string{
		"",
		"text/html; charset=utf-8",
		"a\tb",
		"\t",
		" leading and trailing ",
		"caf\xe9",
		"\x80\xff",
		"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
	}
	for _, value := range good {
		t.Run(fmt.Sprintf("good/%q", value), func(t *testing.T) {
			assert.NoError(t, validateHeader("X-Test", value))
		})
	}

	var bad []string
	for c := range 0x20 {
		if c != '\t' {
			bad = append(bad, "a"+string(rune(c))+"b")
		}
	}
	bad = append(bad, "a\x7fb", "\r\nX-Evil: 1", "x\r\n\r\n<html>", "\n", "\x00")
	for _, value := range bad {
		t.Run(fmt.Sprintf("bad/%q", value), func(t *testing.T) {
			err := validateHeader("X-Test", value)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "wsgi: "), err.Error())
			assert.Contains(t, err.Error(), fmt.Sprintf("%q", value))
		})
	}
}

func TestValidateHeaderHopByHop(t *testing.T) {
	hop := []string{
		"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"TE", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Connection",
	}
	for _, name := range hop {
		for _, variant := range []string{name, strings.ToLower(name), strings.ToUpper(name), mixCase(name)} {
			t.Run(variant, func(t *testing.T) {
				err := validateHeader(variant, "x")
				require.Error(t, err)
				assert.Contains(t, err.Error(), "hop-by-hop")
				assert.Contains(t, err.Error(), fmt.Sprintf("%q", variant))

				_, err = parseResponseHead("200 OK", []string{"Content-Type", "text/plain", variant, "x"})
				assert.Error(t, err)
			})
		}
	}

	// Near misses must not be caught by the length switch.
	for _, name := range []string{"TEx", "T", "Trailers", "Upgrades", "Connections", "Keep-Alive2", "X-Connection"} {
		t.Run("not/"+name, func(t *testing.T) {
			assert.NoError(t, validateHeader(name, "x"))
		})
	}
}

// mixCase alternates upper and lower case so case folding is exercised
// beyond the all-upper and all-lower variants.
func mixCase(s string) string {
	b := []byte(s)
	for i, c := range b {
		if i%2 == 0 {
			b[i] = byte(strings.ToLower(string(c))[0])
		} else {
			b[i] = byte(strings.ToUpper(string(c))[0])
		}
	}
	return string(b)
}

func TestContentLength(t *testing.T) {
	good := []struct {
		headers []string
		want    int64
		value   string
	}{
		{[]string{"Content-Length", "0"}, 0, "0"},
		{[]string{"Content-Length", "5"}, 5, "5"},
		{[]string{"content-length", "007"}, 7, "007"},
		{[]string{"Content-Length", "9223372036854775807"}, 9223372036854775807, "9223372036854775807"},
		{[]string{"Content-Length", "12", "CONTENT-LENGTH", "12", "content-length", "12"}, 12, "12"},
		{[]string{"Content-Length", "12", "content-length", "012"}, 12, "12"},
	}
	for _, tc := range good {
		t.Run(fmt.Sprintf("good/%q", tc.headers), func(t *testing.T) {
			head, err := parseResponseHead("200 OK", tc.headers)
			require.NoError(t, err)
			assert.Equal(t, tc.want, head.contentLength)
			assert.Equal(t, []string{tc.value}, head.header["Content-Length"])
			assert.Len(t, head.header, 1)
		})
	}

	bad := []string{
		"", "-1", "+5", " 5", "5 ", "0x10", "1e3", "1.0", "5,5", "\xd9\xa3",
		"9223372036854775808", "99999999999999999999",
	}
	for _, value := range bad {
		t.Run(fmt.Sprintf("bad/%q", value), func(t *testing.T) {
			err := validateHeader("Content-Length", value)
			require.Error(t, err)
			assert.Contains(t, err.Error(), fmt.Sprintf("%q", value))

			_, err = parseResponseHead("200 OK", []string{"content-length", value})
			assert.Error(t, err)
		})
	}

	t.Run("conflicting", func(t *testing.T) {
		_, err := parseResponseHead("200 OK", []string{"Content-Length", "5", "content-length", "6"})
		require.Error(t, err)
		assert.Contains(t, err.Error(), `"5"`)
		assert.Contains(t, err.Error(), `"6"`)
	})

	t.Run("none", func(t *testing.T) {
		head, err := parseResponseHead("200 OK", []string{"Content-Type", "text/plain"})
		require.NoError(t, err)
		assert.Equal(t, int64(-1), head.contentLength)
		assert.NotContains(t, head.header, "Content-Length")
	})
}

func TestParseResponseHead(t *testing.T) {
	t.Run("typical", func(t *testing.T) {
		head, err := parseResponseHead("201 Created", []string{
			"content-type", "text/html; charset=utf-8",
			"Set-Cookie", "a=1",
			"Content-Length", "42",
			"set-cookie", "b=2",
			"X-Empty", "",
		})
		require.NoError(t, err)
		assert.Equal(t, 201, head.status)
		assert.Equal(t, int64(42), head.contentLength)
		assert.Equal(t, http.Header{
			"Content-Type":   {"text/html; charset=utf-8"},
			"Set-Cookie":     {"a=1", "b=2"},
			"Content-Length": {"42"},
			"X-Empty":        {""},
		}, head.header)
	})

	t.Run("no headers", func(t *testing.T) {
		head, err := parseResponseHead("204 ", nil)
		require.NoError(t, err)
		assert.Equal(t, 204, head.status)
		assert.Equal(t, int64(-1), head.contentLength)
		assert.Empty(t, head.header)
	})

	t.Run("repeated keys do not clobber each other", func(t *testing.T) {
		// Guards the shared backing array: appending to the first key
		// must not overwrite the value of the key stored after it.
		head, err := parseResponseHead("200 OK", []string{
			"A", "1", "B", "2", "a", "3", "C", "4", "b", "5", "A", "6",
		})
		require.NoError(t, err)
		assert.Equal(t, http.Header{
			"A": {"1", "3", "6"},
			"B": {"2", "5"},
			"C": {"4"},
		}, head.header)
	})

	bad := []struct {
		name    string
		status  string
		headers []string
		msg     string
	}{
		{"odd length", "200 OK", []string{"Content-Type"}, "odd length"},
		{"bad status", "200", nil, "three digits"},
		{"1xx", "103 Early Hints", []string{"Link", "</a>"}, "1xx"},
		{"bad name", "200 OK", []string{"X Foo", "1"}, "header name"},
		{"bad value", "200 OK", []string{"X-Foo", "1\r\nX-Evil: 1"}, "control character"},
		{"bad later header", "200 OK", []string{"A", "1", "B", "\x00"}, "control character"},
		{"hop-by-hop", "200 OK", []string{"transfer-encoding", "chunked"}, "hop-by-hop"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseResponseHead(tc.status, tc.headers)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "wsgi: "), err.Error())
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}

func FuzzParseStatus(f *testing.F) {
	for _, s := range []string{
		"200 OK", "204 ", "999 X", "100 Continue", "200", "2000 OK", " 200 OK",
		"200 OK\r\nX-Evil: 1", "200 \x00", "200 caf\xe9", "099 X", "200 \t",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, status string) {
		code, err := parseStatus(status)
		if err != nil {
			assert.Zero(t, code)
			assert.True(t, strings.HasPrefix(err.Error(), "wsgi: "), err.Error())
			return
		}
		assert.GreaterOrEqual(t, code, 200)
		assert.LessOrEqual(t, code, 999)
		assert.NotContains(t, status, "\r")
		assert.NotContains(t, status, "\n")
		assert.NotContains(t, status, "\x00")
		assert.Equal(t, fmt.Sprintf("%03d ", code), status[:4])
	})
}

func FuzzValidateHeader(f *testing.F) {
	for _, s := range [][2]string{
		{"Content-Type", "text/plain"},
		{"X-Foo", "a\tb"},
		{"X-Foo", "caf\xe9"},
		{"X-Foo\r\n", "v"},
		{"X-Foo", "v\r\nX-Evil: 1"},
		{"", ""},
		{"Content-Length", "007"},
		{"content-length", "-1"},
		{"TE", "trailers"},
		{"X:Foo", "v"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		err := validateHeader(name, value)
		if err != nil {
			assert.True(t, strings.HasPrefix(err.Error(), "wsgi: "), err.Error())
			return
		}
		require.NotEmpty(t, name)
		for i := 0; i < len(name); i++ {
			assert.True(t, isTcharSlow(name[i]), "name %q has non-token byte %q", name, name[i])
		}
		assert.False(t, strings.ContainsAny(value, "\r\n\x00"), "value %q", value)
		for i := 0; i < len(value); i++ {
			c := value[i]
			assert.False(t, c < 0x20 && c != '\t' || c == 0x7f, "value %q has control byte %q", value, c)
		}
	})
}

// isTcharSlow is an independent spelling of RFC 9110 tchar, so the fuzz
// target does not just check the lookup table against itself.
func isTcharSlow(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func FuzzParseResponseHead(f *testing.F) {
	f.Add("200 OK", "Content-Type", "text/plain", "Content-Length", "5")
	f.Add("200 OK", "Set-Cookie", "a=1", "set-cookie", "b=2")
	f.Add("200 OK", "Content-Length", "5", "content-length", "05")
	f.Add("404 Not Found", "X-Foo", " \tpadded\t ", "X-Bar", "caf\xe9")
	f.Add("200 OK", "X-Foo", "a\r\nX-Evil: 1", "X-Bar", "b")
	f.Add("500 ", "x", "", "Y", "a\tb")
	f.Fuzz(func(t *testing.T, status, name, value, name2, value2 string) {
		head, err := parseResponseHead(status, []string{name, value, name2, value2})
		if err != nil {
			assert.True(t, strings.HasPrefix(err.Error(), "wsgi: "), err.Error())
			return
		}
		require.GreaterOrEqual(t, head.status, 200)
		require.LessOrEqual(t, head.status, 999)

		// The head holds exactly the app's values, in order, under
		// canonical keys; only a duplicate equal Content-Length is dropped.
		want := http.Header{}
		want.Add(name, value)
		want.Add(name2, value2)
		if cl := want["Content-Length"]; len(cl) == 2 {
			want["Content-Length"] = cl[:1]
		}
		require.Equal(t, want, head.header)

		// Writing must not rewrite anything beyond the trimming
		// net/http always does.
		var buf bytes.Buffer
		require.NoError(t, head.header.Write(&buf))
		var exp strings.Builder
		keys := make([]string, 0, len(head.header))
		for k := range head.header {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			for _, v := range head.header[k] {
				exp.WriteString(k + ": " + strings.Trim(v, " \t") + "\r\n")
			}
		}
		require.Equal(t, exp.String(), buf.String())

		// And a reader sees the same header back: nothing was injected.
		r := textproto.NewReader(bufio.NewReader(strings.NewReader(buf.String() + "\r\n")))
		got, err := r.ReadMIMEHeader()
		require.NoError(t, err)
		trimmed := http.Header{}
		for k, vv := range head.header {
			for _, v := range vv {
				trimmed.Add(k, strings.Trim(v, " \t"))
			}
		}
		require.Equal(t, trimmed, http.Header(got))
	})
}

func BenchmarkParseResponseHead(b *testing.B) {
	headers := []string{
		"Content-Type", "text/html; charset=utf-8",
		"Content-Length", "1234",
		"Set-Cookie", "session=abc123; Path=/; HttpOnly",
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseResponseHead("200 OK", headers); err != nil {
			b.Fatal(err)
		}
	}
}
