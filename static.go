package wsgi

import "net/http"

// staticFiles serves a directory at a URL prefix. (Being written.)
type staticFiles struct {
	root      string
	urlPrefix string
}

// newStaticFiles serves the files under root at urlPrefix (ending in "/").
func newStaticFiles(root, urlPrefix string) (*staticFiles, error) {
	return &staticFiles{root: root, urlPrefix: urlPrefix}, nil
}

// serve answers r when its path is under the URL prefix and reports
// whether it did.
func (s *staticFiles) serve(w http.ResponseWriter, r *http.Request) bool {
	return false
}
