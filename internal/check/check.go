// Package check holds the syntax checks that wsgi.Options and the config
// file share, so that a value the file accepts is one New accepts.
package check

import (
	"net/netip"
	"strings"
)

// DottedName reports whether s is a Python identifier or several joined
// by dots ("pkg.mod").
func DottedName(s string) bool {
	if s == "" {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" {
			return false
		}
		for i, r := range part {
			ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') ||
				(i > 0 && r >= '0' && r <= '9') || r > 0x7f
			if !ok {
				return false
			}
		}
	}
	return true
}

// UnixPeers is the trusted proxy that stands for every peer on a Unix
// socket.
const UnixPeers = "unix"

// Proxy reads a trusted proxy: a CIDR network ("10.0.0.0/8") or a single
// address, surrounding spaces ignored, or "unix" (every peer on a Unix
// socket), which gives the zero Prefix: it contains no address.
func Proxy(s string) (netip.Prefix, bool) {
	s = strings.TrimSpace(s)
	if s == UnixPeers {
		return netip.Prefix{}, true
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), true
}
