package metrics_test

import (
	"os"
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi/metrics"
)

// TestDocsMetrics checks that docs/observability.md has a row for every
// metric the collector describes.
func TestDocsMetrics(t *testing.T) {
	b, err := os.ReadFile("../docs/observability.md")
	require.NoError(t, err)
	ch := make(chan *prometheus.Desc, 100)
	metrics.NewCollector().Describe(ch)
	close(ch)
	fqName := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	n := 0
	for d := range ch {
		m := fqName.FindStringSubmatch(d.String())
		require.NotNil(t, m, "%s", d)
		n++
		assert.Regexp(t, "(?m)^\\| `"+m[1]+"` \\|", string(b), "docs/observability.md: no row for %s", m[1])
	}
	assert.Greater(t, n, 10, "metrics described")
}
