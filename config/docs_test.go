package config_test

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi/config"
)

// TestDocsKeys checks the example file of docs/command.md against the
// keys Load accepts (the toml tags of Config, App and Auth): each key is
// shown in its table, and the example shows no key that Load would refuse.
func TestDocsKeys(t *testing.T) {
	b, err := os.ReadFile("../docs/command.md")
	require.NoError(t, err)
	_, doc, ok := strings.Cut(string(b), "\n## The configuration file\n")
	require.True(t, ok, "docs/command.md has no configuration file section")
	_, example, ok := strings.Cut(doc, "```toml\n")
	require.True(t, ok, "no toml example")
	example, _, _ = strings.Cut(example, "```")

	// shown maps each table of the example ("", "app", "app.auth",
	// "app.env") to the keys set in it.
	shown := map[string]map[string]bool{}
	table := ""
	header := regexp.MustCompile(`^\[\[?([a-z.]+)\]\]?`)
	key := regexp.MustCompile(`^([a-z0-9_]+)\s*=`)
	for _, line := range strings.Split(example, "\n") {
		if m := header.FindStringSubmatch(line); m != nil {
			table = m[1]
			if shown[table] == nil {
				shown[table] = map[string]bool{}
			}
			continue
		}
		if m := key.FindStringSubmatch(line); m != nil {
			if shown[table] == nil {
				shown[table] = map[string]bool{}
			}
			shown[table][m[1]] = true
		}
	}

	tags := func(v any) map[string]bool {
		out := map[string]bool{}
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			if tag := typ.Field(i).Tag.Get("toml"); tag != "" && tag != "-" {
				out[tag] = true
			}
		}
		return out
	}
	for _, tc := range []struct {
		table  string
		keys   map[string]bool
		tables []string // keys that are tables of their own
	}{
		{"", tags(config.Config{}), []string{"app"}},
		{"app", tags(config.App{}), []string{"auth", "env"}},
		{"app.auth", tags(config.Auth{}), nil},
	} {
		for k := range tc.keys {
			switch sub := strings.TrimPrefix(tc.table+"."+k, "."); {
			case contains(tc.tables, k):
				assert.Contains(t, shown, sub, "docs/command.md: the example has no [%s] table", sub)
			default:
				assert.True(t, shown[tc.table][k], "docs/command.md: the example does not show key %q (table %q)", k, tc.table)
			}
		}
		for k := range shown[tc.table] {
			assert.True(t, tc.keys[k], "docs/command.md: the example shows key %q (table %q), which Load refuses", k, tc.table)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
