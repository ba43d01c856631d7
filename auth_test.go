package wsgi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

// authHtpasswd writes an htpasswd file of bcrypt hashes (at the lowest
// cost, for speed) for users given as user, password pairs.
func authHtpasswd(t *testing.T, pairs ...string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i+1 < len(pairs); i += 2 {
		hash, err := bcrypt.GenerateFromPassword([]byte(pairs[i+1]), bcrypt.MinCost)
		require.NoError(t, err)
		fmt.Fprintf(&b, "%s:%s\n", pairs[i], hash)
	}
	return authFile(t, b.String())
}

func authFile(t *testing.T, content string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "htpasswd")
	require.NoError(t, os.WriteFile(file, []byte(content), 0o600))
	return file
}

func authHandler(t *testing.T, cfg *BasicAuth) *Handler {
	t.Helper()
	h, err := New(Options{Dir: "testdata/auth", App: "app", BasicAuth: cfg, Static: true})
	require.NoError(t, err, "%+v", err)
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func TestAuthRequests(t *testing.T) {
	file := authHtpasswd(t, "alice", "wonderland", "bob", "p:ss wörd")
	plain := authHandler(t, &BasicAuth{HtpasswdFile: file})
	passing := authHandler(t, &BasicAuth{HtpasswdFile: file, Realm: `the "shop"`, PassAuthorization: true})

	cases := []struct {
		name   string
		header []string // Authorization values
		user   string   // "" when 401
	}{
		{"no header", nil, ""},
		{"wrong password", []string{basic("alice", "nope")}, ""},
		{"empty password", []string{basic("alice", "")}, ""},
		{"unknown user", []string{basic("mallory", "wonderland")}, ""},
		{"user case", []string{basic("Alice", "wonderland")}, ""},
		{"password prefix", []string{basic("alice", "wonderlan")}, ""},
		{"bad base64", []string{"Basic !!!"}, ""},
		{"no colon", []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("alice"))}, ""},
		{"bearer", []string{"Bearer x"}, ""},
		{"empty", []string{""}, ""},
		{"good", []string{basic("alice", "wonderland")}, "alice"},
		{"scheme case", []string{"basic " + base64.StdEncoding.EncodeToString([]byte("alice:wonderland"))}, "alice"},
		{"colon and utf-8 in password", []string{basic("bob", "p:ss wörd")}, "bob"},
	}
	for _, c := range cases {
		for _, h := range []*Handler{plain, passing} {
			t.Run(fmt.Sprintf("%s/pass=%v", c.name, h == passing), func(t *testing.T) {
				for _, target := range []string{"/x", "/static/app.py"} {
					r := httptest.NewRequest("GET", target, nil)
					for _, v := range c.header {
						r.Header.Add("Authorization", v)
					}
					before := r.Header.Clone()
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, r)
					assert.Equal(t, before, r.Header, "the caller's header must not change")

					if c.user == "" {
						assert.Equal(t, 401, rec.Code, rec.Body.String())
						realm := "app:application"
						if h == passing {
							realm = `the \"shop\"`
						}
						assert.Equal(t, `Basic realm="`+realm+`", charset="UTF-8"`, rec.Header().Get("WWW-Authenticate"))
						assert.Equal(t, "text/plain; charset=utf-8", rec.Header().Get("Content-Type"))
						assert.NotContains(t, rec.Body.String(), "REMOTE_USER")
						continue
					}
					if target != "/x" {
						// Past authentication, static files are served (none here).
						assert.Equal(t, 404, rec.Code)
						continue
					}
					require.Equal(t, 200, rec.Code, rec.Body.String())
					var env map[string]string
					require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &env), rec.Body.String())
					assert.Equal(t, c.user, env["REMOTE_USER"])
					assert.Equal(t, "Basic", env["AUTH_TYPE"])
					if h == passing {
						assert.Equal(t, c.header[0], env["HTTP_AUTHORIZATION"])
					} else {
						assert.NotContains(t, env, "HTTP_AUTHORIZATION")
					}
				}
			})
		}
	}
}

func TestAuthOverridesAndHidesHeaders(t *testing.T) {
	file := authHtpasswd(t, "alice", "wonderland")
	h := authHandler(t, &BasicAuth{HtpasswdFile: file})

	// A middleware's REMOTE_USER is replaced; its other keys stay.
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("Authorization", basic("alice", "wonderland"))
	// A non-canonical spelling must not slip through to the environ.
	r.Header["authorization"] = []string{"Basic c2VjcmV0"}
	r = r.WithContext(WithEnviron(r.Context(), map[string]string{"REMOTE_USER": "eve", "PATH_INFO": "/mw"}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	var env map[string]string
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &env))
	assert.Equal(t, map[string]string{"REMOTE_USER": "alice", "AUTH_TYPE": "Basic", "PATH_INFO": "/mw"}, env)
	assert.Len(t, r.Header, 2)
}

func TestAuthOverHTTP(t *testing.T) {
	file := authHtpasswd(t, "alice", "wonderland")
	srv := httptest.NewServer(authHandler(t, &BasicAuth{HtpasswdFile: file, Realm: "Shop"}))
	t.Cleanup(srv.Close)

	resp, err := http.Get(srv.URL + "/x")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 401, resp.StatusCode)
	assert.Equal(t, `Basic realm="Shop", charset="UTF-8"`, resp.Header.Get("WWW-Authenticate"))

	req, err := http.NewRequest("GET", srv.URL+"/x", nil)
	require.NoError(t, err)
	req.SetBasicAuth("alice", "wonderland")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	var env map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&env))
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "alice", env["REMOTE_USER"])
}

func TestAuthBadConfig(t *testing.T) {
	good, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	require.NoError(t, err)
	g := string(good)
	cases := []struct {
		name, content string
		want          string // in the error, after the file name
	}{
		{"empty", "", " has no users"},
		{"only comments", "# nobody\n\n", " has no users"},
		{"no colon", "alice:" + g + "\nbob\n", " line 2: want user:hash"},
		{"empty user", ":" + g + "\n", " line 1: want user:hash"},
		{"empty hash", "\n\nalice:\n", " line 3: want user:hash"},
		{"md5", "alice:" + g + "\nbob:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n", " line 2: only bcrypt hashes are supported"},
		{"sha1", "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", " line 1: only bcrypt hashes are supported"},
		{"crypt", "alice:rl0uE0mVKZxLY\n", " line 1: only bcrypt hashes are supported"},
		{"plain", "alice:secret\n", " line 1: only bcrypt hashes are supported"},
		{"2x", "alice:$2x" + g[3:] + "\n", " line 1: only bcrypt hashes are supported"},
		{"sha512 crypt", "alice:$6$salt$abc\n", " line 1: only bcrypt hashes are supported"},
		{"truncated bcrypt", "alice:" + g[:40] + "\n", " line 1: malformed bcrypt hash"},
		{"bad bcrypt chars", "alice:" + g[:50] + "!!!!!!!!!!\n", " line 1: malformed bcrypt hash"},
		{"trailing field", "alice:" + g + ":extra\n", " line 1: malformed bcrypt hash"},
		{"duplicate", "alice:" + g + "\nalice:" + g + "\n", ` line 2: user "alice" is listed twice`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := authFile(t, c.content)
			_, err := New(Options{Dir: "testdata/auth", App: "app", BasicAuth: &BasicAuth{HtpasswdFile: file}})
			require.Error(t, err)
			assert.Equal(t, "wsgi: htpasswd "+file+c.want, err.Error())
			assert.NotContains(t, err.Error(), "$2a$", "no hash in errors")
		})
	}
	t.Run("missing file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "nope")
		_, err := New(Options{Dir: "testdata/auth", App: "app", BasicAuth: &BasicAuth{HtpasswdFile: file}})
		require.Error(t, err)
		assert.Contains(t, err.Error(), file)
		assert.True(t, strings.HasPrefix(err.Error(), "wsgi: htpasswd"), err.Error())
	})
	t.Run("no file", func(t *testing.T) {
		_, err := New(Options{Dir: "testdata/auth", App: "app", BasicAuth: &BasicAuth{}})
		assert.EqualError(t, err, "wsgi: BasicAuth.HtpasswdFile is required")
	})
	t.Run("control in realm", func(t *testing.T) {
		file := authFile(t, "alice:"+g+"\n")
		_, err := New(Options{Dir: "testdata/auth", App: "app", BasicAuth: &BasicAuth{HtpasswdFile: file, Realm: "a\r\nSet-Cookie: x"}})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "control character")
	})
}

func TestAuthHtpasswdFormat(t *testing.T) {
	a, err := bcrypt.GenerateFromPassword([]byte("pa"), bcrypt.MinCost)
	require.NoError(t, err)
	b, err := bcrypt.GenerateFromPassword([]byte("pb"), bcrypt.MinCost+1)
	require.NoError(t, err)
	// htpasswd -B writes $2y$; Python's bcrypt writes $2b$.
	content := "\xef\xbb\xbf# comment\r\n" +
		"alice:" + string(a) + "\r\n" +
		"\n  \n" +
		"bob:$2y$" + string(b)[4:] + "  \n" +
		"carol:$2a$" + string(a)[4:]
	users, cost, err := readHtpasswd(authFile(t, content))
	require.NoError(t, err)
	assert.Len(t, users, 3)
	assert.Equal(t, bcrypt.MinCost, cost, "the most common cost")

	auth, err := newBasicAuth(&BasicAuth{HtpasswdFile: authFile(t, content)}, "n")
	require.NoError(t, err)
	for user, pw := range map[string]string{"alice": "pa", "bob": "pb", "carol": "pa"} {
		assert.True(t, auth.verify(user, pw), user)
		assert.False(t, auth.verify(user, pw+"x"), user)
	}
	dummyCost, err := bcrypt.Cost(auth.dummy)
	require.NoError(t, err)
	assert.Equal(t, bcrypt.MinCost, dummyCost)
}

func TestAuthCache(t *testing.T) {
	auth, err := newBasicAuth(&BasicAuth{HtpasswdFile: authHtpasswd(t, "alice", "wonderland", "bob", "builder")}, "n")
	require.NoError(t, err)
	now := time.Unix(1_000_000, 0)
	auth.now = func() time.Time { return now }
	var compares atomic.Int32
	auth.compare = func(hash, pw []byte) error {
		compares.Add(1)
		return bcrypt.CompareHashAndPassword(hash, pw)
	}

	assert.True(t, auth.verify("alice", "wonderland"))
	assert.True(t, auth.verify("alice", "wonderland"))
	assert.Equal(t, int32(1), compares.Load(), "the second check is cached")

	// Wrong passwords and unknown users always cost a comparison.
	assert.False(t, auth.verify("alice", "wonderland2"))
	assert.False(t, auth.verify("mallory", "x"))
	assert.False(t, auth.verify("mallory", "x"))
	assert.Equal(t, int32(4), compares.Load())
	// A wrong password does not evict the good one.
	assert.True(t, auth.verify("alice", "wonderland"))
	assert.Equal(t, int32(4), compares.Load())

	now = now.Add(authCacheTTL)
	assert.True(t, auth.verify("alice", "wonderland"))
	assert.Equal(t, int32(5), compares.Load(), "expired")

	// A full cache stays bounded.
	for i := range authCacheMax + 10 {
		now = now.Add(time.Millisecond)
		auth.remember(fmt.Sprintf("u%d", i), auth.digest("u", "p"))
	}
	assert.Len(t, auth.cache, authCacheMax)
	assert.Contains(t, auth.cache, fmt.Sprintf("u%d", authCacheMax+9))
	assert.NotContains(t, auth.cache, "alice", "the oldest went first")

	// Digests separate user from password.
	assert.NotEqual(t, auth.digest("ab", "c"), auth.digest("a", "bc"))
}

func TestAuthRaceFree(t *testing.T) {
	file := authHtpasswd(t, "alice", "wonderland")
	h := authHandler(t, &BasicAuth{HtpasswdFile: file})
	done := make(chan int, 16)
	for i := range 16 {
		go func() {
			r := httptest.NewRequest("GET", "/x", nil)
			if i%2 == 0 {
				r.Header.Set("Authorization", basic("alice", "wonderland"))
			} else {
				r.Header.Set("Authorization", basic("alice", "nope"))
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			done <- rec.Code
		}()
	}
	counts := map[int]int{}
	for range 16 {
		counts[<-done]++
	}
	assert.Equal(t, map[int]int{200: 8, 401: 8}, counts)
}
