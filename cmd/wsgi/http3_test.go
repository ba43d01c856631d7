package main

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHTTP3(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	certFile, keyFile := ca.issueValid(t, t.TempDir(), 1)
	for _, tc := range []struct {
		name, kind, proto string
		args              []string
	}{
		{"wsgi", "wsgi", "HTTP/3.0", []string{"-app", "protocols"}},
		{"asgi", "asgi", "HTTP/3", []string{"-app", "protocols:app", "-protocol", "asgi"}},
		{"workers", "wsgi", "HTTP/3.0", []string{"-app", "protocols", "-workers", "2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, nil, append([]string{"-addr", "127.0.0.1:0", "-dir", testdata, "-log-format", "json",
				"-tls-cert", certFile, "-tls-key", keyFile, "-http3"}, tc.args...)...)
			addr := p.addr(t)
			_, port, _ := strings.Cut(addr, ":")

			// TCP responses announce HTTP/3 on the same port.
			tcp := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}
			resp, err := tcp.Get("https://" + addr + "/")
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, fmt.Sprintf(`h3=":%s"; ma=2592000`, port), resp.Header.Get("Alt-Svc"))

			tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}
			defer tr.Close()
			h3 := &http.Client{Timeout: 10 * time.Second, Transport: tr}
			url := "https://" + addr + "/"

			resp, err = h3.Get(url)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			assert.Equal(t, "HTTP/3.0", resp.Proto)
			assert.Equal(t, tc.kind+" https "+tc.proto+"\n", string(body))

			// A streaming response, chunk by chunk.
			resp, err = h3.Get(url + "stream")
			require.NoError(t, err)
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			assert.Equal(t, "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n", string(body))

			// An upload, echoed: with a length, and streamed without one.
			upload := make([]byte, 1<<20)
			_, _ = rand.Read(upload)
			resp, err = h3.Post(url, "application/octet-stream", bytes.NewReader(upload))
			require.NoError(t, err)
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.True(t, bytes.Equal(upload, body), "echoed %d bytes of %d", len(body), len(upload))

			resp, err = h3.Post(url, "application/octet-stream", io.MultiReader(bytes.NewReader(upload[:1000]), bytes.NewReader(upload[1000:])))
			require.NoError(t, err)
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			assert.True(t, bytes.Equal(upload, body), "echoed %d bytes of %d (chunked)", len(body), len(upload))

			assert.Equal(t, 0, p.stop(t), p.stderr())
		})
	}
}
