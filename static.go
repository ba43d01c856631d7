package wsgi

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// staticCacheControl is the Cache-Control of a static file (unless a
// middleware in front already set one). File names are not fingerprinted,
// so browsers may reuse a file for a minute and then revalidate it with
// its ETag (a cheap 304). There is no "public": behind BasicAuth, shared
// caches must not keep the files for other users.
const staticCacheControl = "max-age=60"

// staticFiles serves the regular files of a directory at a URL prefix, with
// conditional and range requests (http.ServeContent) and precompressed
// ".gz" siblings. The directory is opened per request with os.OpenRoot, so
// no request path or symlink reaches outside it, a directory created or
// replaced after New is picked up, and no descriptor outlives a request.
//
// Whatever the reason a file cannot be served (missing, a directory, a
// hidden name, "..", an encoded slash, a symlink out of the directory,
// no permission), the answer is 404, so that answers tell nothing about
// what exists outside. A NUL in the path gets 400.
type staticFiles struct {
	root      string // directory on disk
	urlPrefix string // "/prefix/static/", ending in "/"
}

// newStaticFiles serves the files under root at urlPrefix (ending in "/").
// A root that does not exist yet is fine (every file is 404 until it does);
// a root that is not a directory is an error.
func newStaticFiles(root, urlPrefix string) (*staticFiles, error) {
	st, err := os.Stat(root)
	switch {
	case err == nil && !st.IsDir():
		return nil, fmt.Errorf("wsgi: static root %s is not a directory", root)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("wsgi: static root: %w", err)
	}
	return &staticFiles{root: root, urlPrefix: urlPrefix}, nil
}

// serve answers r when its path is under the URL prefix and reports
// whether it did.
// matches says whether a request is for a static file.
func (s *staticFiles) matches(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, s.urlPrefix)
}

func (s *staticFiles) serve(w http.ResponseWriter, r *http.Request) bool {
	name, ok := strings.CutPrefix(r.URL.Path, s.urlPrefix)
	if !ok {
		return false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		plainError(w, http.StatusMethodNotAllowed, "405 method not allowed")
		return true
	}
	if strings.IndexByte(name, 0) >= 0 {
		plainError(w, http.StatusBadRequest, "400 bad request")
		return true
	}
	if !validStaticName(name) || hasEncodedSeparator(r.URL.RawPath) {
		staticNotFound(w)
		return true
	}

	root, err := os.OpenRoot(s.root)
	if err != nil {
		staticNotFound(w)
		return true
	}
	defer root.Close()
	f, info, ok := openRegular(root, name)
	if !ok {
		staticNotFound(w)
		return true
	}
	defer f.Close()

	hdr := w.Header()
	hdr.Set("Content-Type", staticContentType(name))
	hdr.Set("X-Content-Type-Options", "nosniff")
	if _, set := hdr["Cache-Control"]; !set {
		hdr.Set("Cache-Control", staticCacheControl)
	}

	var out http.ResponseWriter = w
	var content io.ReadSeeker = f
	etag := staticETag(info, "")
	if gzInfo, err := root.Stat(name + ".gz"); err == nil && gzInfo.Mode().IsRegular() {
		// The response depends on Accept-Encoding whichever variant
		// this client gets: tell caches.
		hdr.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header["Accept-Encoding"]) {
			if gz, gzInfo, ok := openRegular(root, name+".gz"); ok {
				defer gz.Close()
				content, info = gz, gzInfo
				etag = staticETag(gzInfo, "-gz")
				hdr.Set("Content-Encoding", "gzip")
				out = &encodedLengthWriter{ResponseWriter: w, size: gzInfo.Size()}
			}
		}
	}
	hdr.Set("Etag", etag)
	http.ServeContent(out, r, name, info.ModTime(), content)
	return true
}

// validStaticName reports whether name, the decoded path after the URL
// prefix, is a plain relative file path: no empty, ".", ".." or hidden
// segments (so no absolute path, no "//", no trailing "/", no .git/), no
// backslash.
func validStaticName(name string) bool {
	if name == "" || strings.IndexByte(name, '\\') >= 0 {
		return false
	}
	for seg := range strings.SplitSeq(name, "/") {
		if seg == "" || seg[0] == '.' {
			return false
		}
	}
	return filepath.IsLocal(filepath.FromSlash(name))
}

// hasEncodedSeparator reports whether the raw path has "%2F" or "%5C".
// Those decode to "/" and "\" in r.URL.Path, which validStaticName checks
// already; refusing the raw form too keeps one file from having several
// spellings. RawPath is empty when the path has no escape that the
// default encoding would not produce, hence no %2F (a decoded "\" would
// be re-encoded as %5C, but validStaticName refuses it).
func hasEncodedSeparator(raw string) bool {
	for i := 0; i+2 < len(raw); i++ {
		if raw[i] != '%' {
			continue
		}
		if hi, lo := raw[i+1], raw[i+2]|0x20; hi == '2' && lo == 'f' || hi == '5' && lo == 'c' {
			return true
		}
	}
	return false
}

// openRegular opens name under root if it is a regular file (after
// following symlinks that stay inside root). It checks the type before
// opening, so that a FIFO cannot block the request, and again after.
func openRegular(root *os.Root, name string) (*os.File, fs.FileInfo, bool) {
	if st, err := root.Stat(name); err != nil || !st.Mode().IsRegular() {
		return nil, nil, false
	}
	f, err := root.Open(name)
	if err != nil {
		return nil, nil, false
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, false
	}
	return f, st, true
}

// staticTypes are the types of extensions mime.TypeByExtension may not
// know (it depends on the system's mime.types), or knows under another
// name ("application/x-gzip").
var staticTypes = map[string]string{
	".gz":    "application/gzip",
	".txt":   "text/plain; charset=utf-8",
	".map":   "application/json",
	".ico":   "image/x-icon",
	".woff":  "font/woff",
	".woff2": "font/woff2",
	".ttf":   "font/ttf",
	".otf":   "font/otf",
	".md":    "text/markdown; charset=utf-8",
	".csv":   "text/csv; charset=utf-8",
}

// staticContentType is the type of a file from its extension. Unknown
// extensions get application/octet-stream rather than a sniffed type, so
// that an uploaded file cannot turn into HTML.
func staticContentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := staticTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

// staticETag is a strong validator from the size and modification time,
// like nginx's. A variant (the gzip one) gets a suffix so that the two
// representations never share an ETag.
func staticETag(info fs.FileInfo, variant string) string {
	b := make([]byte, 0, 40)
	b = append(b, '"')
	b = strconv.AppendInt(b, info.Size(), 16)
	b = append(b, '-')
	b = strconv.AppendInt(b, info.ModTime().UnixNano(), 16)
	b = append(b, variant...)
	b = append(b, '"')
	return string(b)
}

// acceptsGzip reports whether Accept-Encoding values allow gzip: "gzip"
// (or "x-gzip") with a q above zero, or, when neither is listed, "*" with
// a q above zero. Items with a malformed q are ignored.
func acceptsGzip(values []string) bool {
	gzipQ, starQ := -1.0, -1.0
	for _, v := range values {
		for v != "" {
			var item string
			item, v, _ = strings.Cut(v, ",")
			coding, params, _ := strings.Cut(item, ";")
			coding = strings.TrimSpace(coding)
			q, ok := qValue(params)
			if !ok {
				continue
			}
			switch {
			case strings.EqualFold(coding, "gzip"), strings.EqualFold(coding, "x-gzip"):
				gzipQ = max(gzipQ, q)
			case coding == "*":
				starQ = max(starQ, q)
			}
		}
	}
	if gzipQ >= 0 {
		return gzipQ > 0
	}
	return starQ > 0
}

// qValue finds the q parameter in ";"-separated params: 1 if absent.
func qValue(params string) (float64, bool) {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		name, value, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil || q < 0 || q > 1 {
			return 0, false
		}
		return q, true
	}
	return 1, true
}

func staticNotFound(w http.ResponseWriter) {
	plainError(w, http.StatusNotFound, "404 page not found")
}

// encodedLengthWriter sets the Content-Length of a full 200 response with
// a Content-Encoding, which http.ServeContent leaves out (for the sake of
// handlers that compress on the fly) and would otherwise be chunked.
type encodedLengthWriter struct {
	http.ResponseWriter
	size int64
}

func (e *encodedLengthWriter) WriteHeader(code int) {
	if code == http.StatusOK {
		if h := e.Header(); h.Get("Content-Length") == "" {
			h.Set("Content-Length", strconv.FormatInt(e.size, 10))
		}
	}
	e.ResponseWriter.WriteHeader(code)
}

// ReadFrom keeps sendfile for the body.
func (e *encodedLengthWriter) ReadFrom(src io.Reader) (int64, error) {
	if rf, ok := e.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(e.ResponseWriter, src)
}

// Unwrap lets http.ResponseController reach the real writer.
func (e *encodedLengthWriter) Unwrap() http.ResponseWriter { return e.ResponseWriter }
