package main

import (
	"net/http"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var gogcRe = regexp.MustCompile(`(?m)^go_gc_gogc_percent (\d+)$`)

// TestGCPercent: the command sets Go's GC percent for what it serves,
// unless GOGC says otherwise, as its own metrics report it.
func TestGCPercent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"HTTP/1.x only: a smaller heap", nil, nil, "50"},
		{"HTTP/2: fewer collections", nil, []string{"-h2c"}, "200"},
		{"GOGC wins", []string{"GOGC=75"}, []string{"-h2c"}, "75"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"-addr", "127.0.0.1:0", "-dir", testdata, "-app", "hello",
				"-log-format", "json", "-admin-addr", "127.0.0.1:0"}, tc.args...)
			p := start(t, tc.env, args...)
			p.addr(t)
			code, body := get(t, adminURL(t, p)+"/metrics")
			require.Equal(t, http.StatusOK, code, body)
			m := gogcRe.FindStringSubmatch(body)
			require.NotNil(t, m, "no go_gc_gogc_percent in the metrics")
			assert.Equal(t, tc.want, m[1])
			assert.Equal(t, 0, p.stop(t), p.stderr())
		})
	}
}
