package wsgi_test

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi"
)

// The docs are checked against the code: every relative link of the README
// and docs/ points to a file that exists (and, for a #fragment, to one of
// its headings), and docs/library.md's Options table has a row for every
// field of wsgi.Options and none for a field that does not exist.

var (
	fencedBlock = regexp.MustCompile("(?ms)^```.*?^```[^\n]*$")
	codeSpan    = regexp.MustCompile("`[^`\n]*`")
	mdLink      = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdHeading   = regexp.MustCompile(`(?m)^#{1,6}[ \t]+(.+?)[ \t]*#*$`)
)

// markdownFiles are the README and the docs/ pages.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("docs/*.md")
	require.NoError(t, err)
	require.NotEmpty(t, files, "docs/*.md")
	return append([]string{"README.md"}, files...)
}

// withoutCode is markdown text without fenced blocks and code spans, where
// link syntax is literal.
func withoutCode(md string) string {
	return codeSpan.ReplaceAllString(fencedBlock.ReplaceAllString(md, ""), "")
}

// headingAnchors are the fragments GitHub gives the headings of md: lower
// case, punctuation dropped, spaces to hyphens, "-1", "-2"... for repeats.
func headingAnchors(md string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	for _, m := range mdHeading.FindAllStringSubmatch(fencedBlock.ReplaceAllString(md, ""), -1) {
		var b strings.Builder
		for _, r := range strings.ToLower(m[1]) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteByte('-')
			}
		}
		slug := b.String()
		if n := seen[slug]; n > 0 {
			anchors[slug+"-"+strconv.Itoa(n)] = true
		} else {
			anchors[slug] = true
		}
		seen[slug]++
	}
	return anchors
}

func TestHeadingAnchors(t *testing.T) {
	got := headingAnchors("# The `wsgi` command\n## Start, signals and exit codes\n```\n# not a heading\n```\n## Flags\n## Flags\n")
	assert.Equal(t, map[string]bool{
		"the-wsgi-command":             true,
		"start-signals-and-exit-codes": true,
		"flags":                        true,
		"flags-1":                      true,
	}, got)
}

func TestDocsLinks(t *testing.T) {
	for _, file := range markdownFiles(t) {
		t.Run(file, func(t *testing.T) {
			b, err := os.ReadFile(file)
			require.NoError(t, err)
			own := string(b)
			for _, m := range mdLink.FindAllStringSubmatch(withoutCode(own), -1) {
				link := m[1]
				if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
					continue
				}
				path, frag, _ := strings.Cut(link, "#")
				target, text := file, own
				if path != "" {
					target = filepath.Join(filepath.Dir(file), filepath.FromSlash(path))
					_, err := os.Stat(target)
					if !assert.NoError(t, err, "%s: link %q", file, link) {
						continue
					}
					text = ""
					if frag != "" && strings.HasSuffix(target, ".md") {
						tb, err := os.ReadFile(target)
						require.NoError(t, err)
						text = string(tb)
					}
				}
				if frag != "" && text != "" {
					assert.True(t, headingAnchors(text)[frag], "%s: link %q: no heading #%s in %s", file, link, frag, target)
				}
			}
		})
	}
}

func TestDocsOptionsTable(t *testing.T) {
	b, err := os.ReadFile("docs/library.md")
	require.NoError(t, err)
	_, table, ok := strings.Cut(string(b), "\n## Options\n")
	require.True(t, ok, "docs/library.md has no Options section")
	table, _, _ = strings.Cut(table, "\n## ")
	rowField := regexp.MustCompile("(?m)^\\| `([A-Za-z]+)` \\|")
	documented := map[string]bool{}
	for _, m := range rowField.FindAllStringSubmatch(table, -1) {
		documented[m[1]] = true
	}
	fields := map[string]bool{}
	typ := reflect.TypeFor[wsgi.Options]()
	for i := range typ.NumField() {
		if f := typ.Field(i); f.IsExported() {
			fields[f.Name] = true
			assert.True(t, documented[f.Name], "docs/library.md: no row for Options.%s", f.Name)
		}
	}
	for name := range documented {
		assert.True(t, fields[name], "docs/library.md: a row for %s, which is not a field of Options", name)
	}
}
