package wsgi

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The s* constants index asgiKnownStrs: a string inserted in the wrong
// place would give every scope a wrong key.
func TestASGIKnownStrs(t *testing.T) {
	for id, want := range map[int]string{
		sType: "type", sASGI: "asgi", sVersion: "version", sSpecVersion: "spec_version",
		sHTTPVersion: "http_version", sScheme: "scheme", sPath: "path", sRawPath: "raw_path",
		sQueryString: "query_string", sRootPath: "root_path", sHeaders: "headers", sServer: "server",
		sState: "state", sClient: "client", sMethod: "method", sExtensions: "extensions",
		sSubprotocols: "subprotocols", sEnviron: "environ", sV30: "3.0", sV24: "2.4",
		sEarlyHint: "http.response.early_hint", sTrailers: "http.response.trailers",
		sPathsend: "http.response.pathsend", sWSHTTPResponse: "websocket.http.response",
	} {
		assert.Equal(t, want, asgiKnownStrs[id])
		assert.Equal(t, want, knownStrs[asgiBase+id])
	}
	assert.Equal(t, knownEnvironKeys, knownStrs[:len(knownEnvironKeys)])
}
