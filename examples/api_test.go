package examples_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi/config"
)

// base is the URL of the demo server, started once by TestMain: the
// embedded interpreter and Django's settings are process-wide, so the
// apps are loaded once, as `make run` loads them, against a temporary data
// directory.
var base string

// prefixes are the apps, in the order of apps.toml; every API test runs
// against each.
var prefixes = []string{"/flask", "/django", "/fastapi"}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if os.Getenv("WSGI_TEST_STDLIB_ONLY") != "" {
		// A Python without Debian's Flask, Django and FastAPI (make other-pythons):
		// every test skips (see needServer).
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "wsgi-demo-data-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Set before the interpreter starts (at the first app's load), so
	// Python's os.environ has it.
	os.Setenv("DEMO_DATA_DIR", dir)

	cfg, err := config.Load("apps.toml")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Warnings and errors only: the tests provoke 404s on purpose.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	srv, err := config.NewServer(cfg, logger, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%+v\n", err)
		return 1
	}
	defer srv.Close()
	ts := httptest.NewServer(srv) // 127.0.0.1: in Django's ALLOWED_HOSTS
	defer ts.Close()
	base = ts.URL
	return m.Run()
}

// needServer skips the test when TestMain started no server.
func needServer(t *testing.T) {
	t.Helper()
	if base == "" {
		t.Skip("WSGI_TEST_STDLIB_ONLY: Flask, Django and FastAPI exist only for the system Python")
	}
}

// response is an answer: status, headers and body.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request to the demo server; body, if not "", is sent as JSON.
func do(t *testing.T, method, path, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{resp.StatusCode, resp.Header, data}
}

// decode parses r's JSON body into a value of type T.
func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(r.body, &v), "body: %s", r.body)
	return v
}

type post struct {
	ID        int    `json:"id"`
	Title     string `json:"title"`
	Content   string `json:"content"`
	CreatedAt string `json:"created_at"`
}

type comment struct {
	ID        int    `json:"id"`
	PostID    int    `json:"post_id"`
	Content   string `json:"content"`
	CreatedAt string `json:"created_at"`
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func createPost(t *testing.T, prefix, title, content string) post {
	t.Helper()
	r := do(t, "POST", prefix+"/posts", mustJSON(map[string]string{"title": title, "content": content}))
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	p := decode[post](t, r)
	require.NotZero(t, p.ID)
	return p
}

func createComment(t *testing.T, prefix string, postID int, content string) comment {
	t.Helper()
	r := do(t, "POST", prefix+"/comments", mustJSON(map[string]any{"post_id": postID, "content": content}))
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	c := decode[comment](t, r)
	require.NotZero(t, c.ID)
	return c
}

// forEachApp runs f as a subtest for each app.
func forEachApp(t *testing.T, f func(t *testing.T, prefix string)) {
	needServer(t)
	for _, prefix := range prefixes {
		t.Run(strings.TrimPrefix(prefix, "/"), func(t *testing.T) {
			t.Parallel()
			f(t, prefix)
		})
	}
}

func TestIndexListsApps(t *testing.T) {
	needServer(t)
	r := do(t, "GET", "/", "")
	require.Equal(t, http.StatusOK, r.status)
	for _, prefix := range prefixes {
		assert.Contains(t, string(r.body), `href="`+prefix+`/"`)
	}

	req, err := http.NewRequest("GET", base+"/", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var list struct {
		Apps []struct{ Name, Prefix, Protocol string } `json:"apps"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
	require.Len(t, list.Apps, len(prefixes))
	for i, prefix := range prefixes {
		assert.Equal(t, strings.TrimPrefix(prefix, "/"), list.Apps[i].Name)
		assert.Equal(t, prefix, list.Apps[i].Prefix)
	}
	assert.Equal(t, "wsgi", list.Apps[0].Protocol)
	assert.Equal(t, "wsgi", list.Apps[1].Protocol)
	assert.Equal(t, "asgi", list.Apps[2].Protocol)
}

func TestAppIndex(t *testing.T) {
	forEachApp(t, func(t *testing.T, prefix string) {
		r := do(t, "GET", prefix+"/", "")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		v := decode[struct {
			App       string   `json:"app"`
			Endpoints []string `json:"endpoints"`
		}](t, r)
		assert.Equal(t, strings.TrimPrefix(prefix, "/"), v.App)
		assert.NotEmpty(t, v.Endpoints)
	})
}

func TestPosts(t *testing.T) {
	forEachApp(t, func(t *testing.T, prefix string) {
		p := createPost(t, prefix, "First post", "Hello from "+prefix)
		assert.Equal(t, "First post", p.Title)
		assert.Equal(t, "Hello from "+prefix, p.Content)
		assert.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`, p.CreatedAt)
		path := fmt.Sprintf("%s/posts/%d", prefix, p.ID)

		r := do(t, "GET", path, "")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		assert.Equal(t, p, decode[post](t, r))
		assert.Equal(t, "application/json", r.header.Get("Content-Type"))

		r = do(t, "GET", prefix+"/posts", "")
		require.Equal(t, http.StatusOK, r.status)
		assert.Contains(t, decode[[]post](t, r), p)

		r = do(t, "PUT", path, `{"title": "Edited", "content": "New text"}`)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		edited := decode[post](t, r)
		assert.Equal(t, post{ID: p.ID, Title: "Edited", Content: "New text", CreatedAt: p.CreatedAt}, edited)
		assert.Equal(t, edited, decode[post](t, do(t, "GET", path, "")))

		r = do(t, "DELETE", path, "")
		require.Equal(t, http.StatusNoContent, r.status, "body: %s", r.body)
		assert.Empty(t, r.body)
		assert.Equal(t, http.StatusNotFound, do(t, "GET", path, "").status)
		assert.NotContains(t, decode[[]post](t, do(t, "GET", prefix+"/posts", "")), edited)
	})
}

func TestComments(t *testing.T) {
	forEachApp(t, func(t *testing.T, prefix string) {
		p := createPost(t, prefix, "Commented", "body")
		other := createPost(t, prefix, "Other", "body")
		c := createComment(t, prefix, p.ID, "Nice post")
		assert.Equal(t, p.ID, c.PostID)
		assert.Equal(t, "Nice post", c.Content)
		c2 := createComment(t, prefix, p.ID, "Second")
		c3 := createComment(t, prefix, other.ID, "Elsewhere")
		path := fmt.Sprintf("%s/comments/%d", prefix, c.ID)

		r := do(t, "GET", path, "")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		assert.Equal(t, c, decode[comment](t, r))

		all := decode[[]comment](t, do(t, "GET", prefix+"/comments", ""))
		assert.Subset(t, all, []comment{c, c2, c3})

		r = do(t, "GET", fmt.Sprintf("%s/comments?post_id=%d", prefix, p.ID), "")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		assert.Equal(t, []comment{c, c2}, decode[[]comment](t, r))

		r = do(t, "PUT", path, `{"content": "Edited"}`)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		c.Content = "Edited"
		assert.Equal(t, c, decode[comment](t, r))
		assert.Equal(t, c, decode[comment](t, do(t, "GET", path, "")))

		// post_id in a PUT moves the comment.
		r = do(t, "PUT", path, mustJSON(map[string]any{"post_id": other.ID, "content": "Moved"}))
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		c.PostID, c.Content = other.ID, "Moved"
		assert.Equal(t, c, decode[comment](t, r))
		r = do(t, "GET", fmt.Sprintf("%s/comments?post_id=%d", prefix, other.ID), "")
		assert.Equal(t, []comment{c, c3}, decode[[]comment](t, r))

		r = do(t, "DELETE", path, "")
		require.Equal(t, http.StatusNoContent, r.status, "body: %s", r.body)
		assert.Equal(t, http.StatusNotFound, do(t, "GET", path, "").status)
		assert.Equal(t, http.StatusNotFound, do(t, "DELETE", path, "").status)
	})
}

func TestDeletingAPostDeletesItsComments(t *testing.T) {
	forEachApp(t, func(t *testing.T, prefix string) {
		p := createPost(t, prefix, "Doomed", "body")
		keep := createPost(t, prefix, "Kept", "body")
		c1 := createComment(t, prefix, p.ID, "one")
		c2 := createComment(t, prefix, p.ID, "two")
		k := createComment(t, prefix, keep.ID, "stays")

		require.Equal(t, http.StatusNoContent, do(t, "DELETE", fmt.Sprintf("%s/posts/%d", prefix, p.ID), "").status)
		for _, c := range []comment{c1, c2} {
			assert.Equal(t, http.StatusNotFound, do(t, "GET", fmt.Sprintf("%s/comments/%d", prefix, c.ID), "").status)
		}
		r := do(t, "GET", fmt.Sprintf("%s/comments?post_id=%d", prefix, p.ID), "")
		require.Equal(t, http.StatusOK, r.status)
		assert.Empty(t, decode[[]comment](t, r))
		all := decode[[]comment](t, do(t, "GET", prefix+"/comments", ""))
		assert.Contains(t, all, k)
		assert.NotContains(t, all, c1)
		assert.NotContains(t, all, c2)
	})
}

func TestErrors(t *testing.T) {
	forEachApp(t, func(t *testing.T, prefix string) {
		p := createPost(t, prefix, "Target", "body")
		c := createComment(t, prefix, p.ID, "target")
		postPath := fmt.Sprintf("/posts/%d", p.ID)
		commentPath := fmt.Sprintf("/comments/%d", c.ID)
		okComment := fmt.Sprintf(`{"post_id": %d, "content": "x"}`, p.ID)
		const huge = "99999999999999999999999" // past SQLite's integers

		tests := []struct {
			name, method, path, body string
			status                   int
			msg                      string // in the "error" message
		}{
			{"post: malformed JSON", "POST", "/posts", `{"title": "x",`, 400, "malformed JSON"},
			{"post: empty body", "POST", "/posts", "", 400, "malformed JSON"},
			{"post: not an object", "POST", "/posts", `["title", "content"]`, 400, "JSON object"},
			{"post: no title", "POST", "/posts", `{"content": "x"}`, 400, "title"},
			{"post: no content", "POST", "/posts", `{"title": "x"}`, 400, "content"},
			{"post: title not a string", "POST", "/posts", `{"title": 5, "content": "x"}`, 400, "title"},
			{"post: blank title", "POST", "/posts", `{"title": "  ", "content": "x"}`, 400, "title"},
			{"post: title too long", "POST", "/posts", mustJSON(map[string]string{"title": strings.Repeat("x", 201), "content": "x"}), 400, "title"},
			{"put post: malformed JSON", "PUT", postPath, `{`, 400, "malformed JSON"},
			{"put post: no content", "PUT", postPath, `{"title": "x"}`, 400, "content"},
			{"get post: unknown id", "GET", "/posts/999999", "", 404, ""},
			{"put post: unknown id", "PUT", "/posts/999999", `{"title": "x", "content": "x"}`, 404, ""},
			{"delete post: unknown id", "DELETE", "/posts/999999", "", 404, ""},
			{"comment: malformed JSON", "POST", "/comments", `{"post_id": 1`, 400, "malformed JSON"},
			{"comment: unknown post_id", "POST", "/comments", `{"post_id": 999999, "content": "x"}`, 400, "post_id"},
			{"comment: no post_id", "POST", "/comments", `{"content": "x"}`, 400, "post_id"},
			{"comment: post_id a string", "POST", "/comments", fmt.Sprintf(`{"post_id": "%d", "content": "x"}`, p.ID), 400, "post_id"},
			{"comment: post_id a bool", "POST", "/comments", `{"post_id": true, "content": "x"}`, 400, "post_id"},
			{"comment: no content", "POST", "/comments", fmt.Sprintf(`{"post_id": %d}`, p.ID), 400, "content"},
			{"put comment: malformed JSON", "PUT", commentPath, `nope`, 400, "malformed JSON"},
			{"put comment: unknown post_id", "PUT", commentPath, `{"post_id": 999999, "content": "x"}`, 400, "post_id"},
			{"get comment: unknown id", "GET", "/comments/999999", "", 404, ""},
			{"put comment: unknown id", "PUT", "/comments/999999", okComment, 404, ""},
			{"delete comment: unknown id", "DELETE", "/comments/999999", "", 404, ""},
			{"comments: post_id not a number", "GET", "/comments?post_id=abc", "", 400, "post_id"},
			{"get post: id beyond int64", "GET", "/posts/" + huge, "", 404, ""},
			{"put post: id beyond int64", "PUT", "/posts/" + huge, `{"title": "x", "content": "x"}`, 404, ""},
			{"delete comment: id beyond int64", "DELETE", "/comments/" + huge, "", 404, ""},
			{"comment: post_id beyond int64", "POST", "/comments", `{"post_id": ` + huge + `, "content": "x"}`, 400, "post_id"},
			{"unknown path", "GET", "/nope", "", 404, ""},
			{"method not allowed", "PATCH", "/posts", `{}`, 405, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := do(t, tt.method, prefix+tt.path, tt.body)
				require.Equal(t, tt.status, r.status, "body: %s", r.body)
				assert.Equal(t, "application/json", r.header.Get("Content-Type"))
				v := decode[struct {
					Error string `json:"error"`
				}](t, r)
				assert.NotEmpty(t, v.Error)
				assert.Contains(t, v.Error, tt.msg)
			})
		}

		// Nothing above changed the targets.
		assert.Equal(t, p, decode[post](t, do(t, "GET", prefix+postPath, "")))
		assert.Equal(t, c, decode[comment](t, do(t, "GET", prefix+commentPath, "")))
	})
}

func TestCommentsOfAnUnknownPost(t *testing.T) {
	forEachApp(t, func(t *testing.T, prefix string) {
		for _, id := range []string{"999999", "99999999999999999999999"} {
			r := do(t, "GET", prefix+"/comments?post_id="+id, "")
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			assert.JSONEq(t, `[]`, string(r.body))
		}
	})
}

func TestConcurrentPostsGetDistinctIDs(t *testing.T) {
	forEachApp(t, func(t *testing.T, prefix string) {
		const n = 10
		ids := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				body := mustJSON(map[string]string{"title": fmt.Sprintf("parallel %d", i), "content": "x"})
				resp, err := http.Post(base+prefix+"/posts", "application/json", bytes.NewReader([]byte(body)))
				if !assert.NoError(t, err) {
					return
				}
				defer resp.Body.Close()
				var p post
				assert.Equal(t, http.StatusCreated, resp.StatusCode)
				assert.NoError(t, json.NewDecoder(resp.Body).Decode(&p))
				assert.Equal(t, fmt.Sprintf("parallel %d", i), p.Title)
				ids[i] = p.ID
			})
		}
		wg.Wait()
		seen := map[int]bool{}
		for _, id := range ids {
			assert.NotZero(t, id)
			assert.False(t, seen[id], "id %d given twice: %v", id, ids)
			seen[id] = true
		}
		all := decode[[]post](t, do(t, "GET", prefix+"/posts", ""))
		for _, p := range all {
			delete(seen, p.ID)
		}
		assert.Empty(t, seen, "created posts missing from the list")
	})
}

func TestInterop(t *testing.T) {
	forEachApp(t, func(t *testing.T, prefix string) {
		r := do(t, "GET", prefix+"/interop", "")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		assert.JSONEq(t, `{"ping": "pong", "via": "gohost"}`, string(r.body))
	})
}

type hostInfo struct {
	GoVersion     string  `json:"go_version"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	Apps          []struct {
		Name     string `json:"name"`
		Prefix   string `json:"prefix"`
		Requests int    `json:"requests"`
	} `json:"apps"`
}

func TestHost(t *testing.T) {
	forEachApp(t, func(t *testing.T, prefix string) {
		r := do(t, "GET", prefix+"/host", "")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		first := decode[hostInfo](t, r)
		assert.Equal(t, runtime.Version(), first.GoVersion)
		assert.Greater(t, first.UptimeSeconds, 0.0)
		require.Len(t, first.Apps, len(prefixes))
		i := -1
		for j, p := range prefixes {
			assert.Equal(t, strings.TrimPrefix(p, "/"), first.Apps[j].Name)
			assert.Equal(t, p, first.Apps[j].Prefix)
			if p == prefix {
				i = j
			}
		}

		second := decode[hostInfo](t, do(t, "GET", prefix+"/host", ""))
		assert.GreaterOrEqual(t, second.UptimeSeconds, first.UptimeSeconds)
		// This very request is counted (at least: the other apps'
		// subtests run in parallel).
		assert.Greater(t, second.Apps[i].Requests, first.Apps[i].Requests)
		assert.Positive(t, second.Apps[i].Requests)
	})
}

func TestDjangoAdminStatic(t *testing.T) {
	needServer(t)
	// The login page links the admin's CSS under the mount prefix...
	r := do(t, "GET", "/django/admin/login/", "")
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, string(r.body), `href="/django/static/admin/css/base.css"`)
	assert.Contains(t, string(r.body), `action="/django/admin/login/"`)

	// ...which Go serves from the files collectstatic put in djangoapp/static.
	r = do(t, "GET", "/django/static/admin/css/base.css", "")
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, r.header.Get("Content-Type"), "text/css")
	assert.NotEmpty(t, r.header.Get("Etag"))
	assert.Contains(t, string(r.body), "body")

	assert.Equal(t, http.StatusNotFound, do(t, "GET", "/django/static/admin/css/nope.css", "").status)
}

func TestDjangoAdminNeedsLoginAndCSRF(t *testing.T) {
	needServer(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(base + "/django/admin/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusFound, resp.StatusCode)
	assert.Equal(t, "/django/admin/login/?next=/django/admin/", resp.Header.Get("Location"))

	// The admin is not exempt from CSRF checks, unlike the JSON API.
	resp, err = client.Post(base+"/django/admin/login/", "application/x-www-form-urlencoded",
		strings.NewReader("username=admin&password=admin"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
}
