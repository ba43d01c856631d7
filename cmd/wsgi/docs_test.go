package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDocsFlags checks docs/command.md's flag table against the flags the
// command defines: a row for each, and no row for a flag that is gone.
func TestDocsFlags(t *testing.T) {
	var usage bytes.Buffer
	_, err := parseFlags([]string{"-h"}, &usage)
	require.True(t, errors.Is(err, flag.ErrHelp), "parseFlags -h: %v", err)
	defined := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(usage.String(), -1) {
		defined[m[1]] = true
	}
	require.Greater(t, len(defined), 20, "flags parsed from the usage:\n%s", usage.String())

	b, err := os.ReadFile("../../docs/command.md")
	require.NoError(t, err)
	_, table, ok := strings.Cut(string(b), "\n## Flags\n")
	require.True(t, ok, "docs/command.md has no Flags section")
	table, _, _ = strings.Cut(table, "\n## ")
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `-([a-z0-9-]+)` \\|").FindAllStringSubmatch(table, -1) {
		documented[m[1]] = true
	}
	for name := range defined {
		assert.True(t, documented[name], "docs/command.md: no row for -%s", name)
	}
	for name := range documented {
		assert.True(t, defined[name], "docs/command.md: a row for -%s, which the command does not define", name)
	}
}
