package check

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDottedName(t *testing.T) {
	for s, want := range map[string]bool{
		"app": true, "pkg.mod": true, "_x1.y_2": true, "café": true,
		"": false, "1app": false, "pkg..mod": false, ".mod": false, "a-b": false, "a b": false,
	} {
		assert.Equal(t, want, DottedName(s), s)
	}
}

func TestProxy(t *testing.T) {
	for s, want := range map[string]string{
		"10.1.2.3/8":       "10.0.0.0/8",
		" 192.168.0.1 ":    "192.168.0.1/32",
		"::ffff:127.0.0.1": "127.0.0.1/32",
		"::1":              "::1/128",
	} {
		p, ok := Proxy(s)
		assert.True(t, ok, s)
		assert.Equal(t, netip.MustParsePrefix(want), p, s)
	}
	for _, s := range []string{"", "example.com", "10.0.0.0/33", "1.2.3", "unix:", "UNIX"} {
		_, ok := Proxy(s)
		assert.False(t, ok, s)
	}
	p, ok := Proxy(" unix ")
	assert.True(t, ok)
	assert.False(t, p.IsValid(), "unix: the zero Prefix")
	assert.False(t, p.Contains(netip.MustParseAddr("127.0.0.1")))
}
