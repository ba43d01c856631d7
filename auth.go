package wsgi

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// BasicAuth configures the handler's built-in HTTP Basic authentication.
type BasicAuth struct {
	// HtpasswdFile holds "user:hash" lines with bcrypt hashes
	// (htpasswd -B). Required.
	HtpasswdFile string
	// Realm is sent in WWW-Authenticate. If empty, the app's name.
	Realm string
	// PassAuthorization passes the Authorization header on to the app as
	// HTTP_AUTHORIZATION. If false, the app never sees the credentials.
	PassAuthorization bool
}

// How long, and for how many users, a successful check is remembered so
// that a client sending the same credentials does not pay a bcrypt
// comparison (tens of milliseconds of CPU) on every request.
const (
	authCacheTTL = time.Minute
	authCacheMax = 1024
)

// basicAuth checks requests against an htpasswd file read once, at New.
//
// An unknown user costs the same bcrypt comparison as a known one (against
// a dummy hash of the file's usual cost), so response times do not tell
// which users exist. Successful checks are remembered for authCacheTTL as
// an HMAC of user and password under a key drawn at New, compared in
// constant time; the password itself is never kept.
type basicAuth struct {
	users             map[string][]byte // user -> bcrypt hash
	dummy             []byte            // compared for unknown users
	challenge         string            // the WWW-Authenticate value
	passAuthorization bool

	cacheKey []byte
	mu       sync.Mutex
	cache    map[string]authCacheEntry // user -> last good credentials

	// Seams for tests.
	now     func() time.Time
	compare func(hash, password []byte) error
}

type authCacheEntry struct {
	digest  [sha256.Size]byte
	expires time.Time
}

// errNotBcrypt is the text of the error for a hash of another scheme.
const errNotBcrypt = "wsgi: htpasswd %s line %d: only bcrypt hashes are supported"

func newBasicAuth(cfg *BasicAuth, name string) (*basicAuth, error) {
	if cfg.HtpasswdFile == "" {
		return nil, errors.New("wsgi: BasicAuth.HtpasswdFile is required")
	}
	realm := cfg.Realm
	if realm == "" {
		realm = name
	}
	for _, c := range []byte(realm) {
		if c < ' ' && c != '\t' || c == 0x7f {
			return nil, fmt.Errorf("wsgi: BasicAuth.Realm %q has a control character", realm)
		}
	}
	users, cost, err := readHtpasswd(cfg.HtpasswdFile)
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret) // never fails (crypto/rand since Go 1.24)
	// A password nobody knows, at the cost most users' hashes have.
	dummy, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), cost)
	if err != nil {
		return nil, fmt.Errorf("wsgi: htpasswd %s: %w", cfg.HtpasswdFile, err)
	}
	return &basicAuth{
		users:             users,
		dummy:             dummy,
		challenge:         `Basic realm="` + quoteEscape(realm) + `", charset="UTF-8"`,
		passAuthorization: cfg.PassAuthorization,
		cacheKey:          secret,
		cache:             make(map[string]authCacheEntry),
		now:               time.Now,
		compare:           bcrypt.CompareHashAndPassword,
	}, nil
}

// readHtpasswd parses an htpasswd file of bcrypt hashes. Blank lines and
// lines starting with "#" are skipped. It returns the users and the cost
// most of their hashes have.
func readHtpasswd(file string) (map[string][]byte, int, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, 0, fmt.Errorf("wsgi: htpasswd: %w", err)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	users := make(map[string][]byte)
	costs := make(map[int]int)
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		line = strings.TrimRight(line, " \t\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" || hash == "" {
			return nil, 0, fmt.Errorf("wsgi: htpasswd %s line %d: want user:hash", file, n)
		}
		if !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") && !strings.HasPrefix(hash, "$2y$") {
			return nil, 0, fmt.Errorf(errNotBcrypt, file, n)
		}
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil || !validBcrypt(hash) {
			return nil, 0, fmt.Errorf("wsgi: htpasswd %s line %d: malformed bcrypt hash", file, n)
		}
		if _, dup := users[user]; dup {
			return nil, 0, fmt.Errorf("wsgi: htpasswd %s line %d: user %q is listed twice", file, n, user)
		}
		users[user] = []byte(hash)
		costs[cost]++
	}
	if len(users) == 0 {
		return nil, 0, fmt.Errorf("wsgi: htpasswd %s has no users", file)
	}
	cost, most := 0, 0
	for c, k := range costs {
		if k > most || k == most && c > cost {
			cost, most = c, k
		}
	}
	return users, cost, nil
}

// validBcrypt checks the shape of "$2y$NN$" + 53 characters of bcrypt's
// base64 (22 of salt, 31 of hash), which bcrypt.Cost does not.
func validBcrypt(hash string) bool {
	if len(hash) != 60 || hash[6] != '$' {
		return false
	}
	for _, c := range []byte(hash[7:]) {
		ok := c == '.' || c == '/' || '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
		if !ok {
			return false
		}
	}
	return true
}

// quoteEscape escapes s for the inside of a quoted-string.
func quoteEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// check authenticates r. It returns the request to serve (carrying
// REMOTE_USER and AUTH_TYPE for the environ, without the credentials
// unless configured), or nil after answering 401.
func (a *basicAuth) check(w http.ResponseWriter, r *http.Request) *http.Request {
	user, password, ok := r.BasicAuth()
	if !ok || !a.verify(user, password) {
		w.Header().Set("WWW-Authenticate", a.challenge)
		plainError(w, http.StatusUnauthorized, "401 unauthorized")
		return nil
	}
	ctx := WithEnviron(r.Context(), map[string]string{
		"REMOTE_USER": user,
		"AUTH_TYPE":   "Basic",
	})
	out := r.WithContext(ctx) // a shallow copy: r itself is not changed
	if !a.passAuthorization {
		hdr := make(http.Header, len(r.Header))
		for k, v := range r.Header {
			// Also a non-canonical spelling, which buildEnviron would
			// still turn into HTTP_AUTHORIZATION.
			if !strings.EqualFold(k, "Authorization") {
				hdr[k] = v
			}
		}
		out.Header = hdr
	}
	return out
}

// verify reports whether password is user's. It runs one bcrypt
// comparison whether or not the user exists, unless the same credentials
// succeeded within authCacheTTL.
func (a *basicAuth) verify(user, password string) bool {
	digest := a.digest(user, password)
	if a.cached(user, digest) {
		return true
	}
	hash, known := a.users[user]
	if !known {
		hash = a.dummy
	}
	ok := a.compare(hash, []byte(password)) == nil && known
	if ok {
		a.remember(user, digest)
	}
	return ok
}

func (a *basicAuth) digest(user, password string) [sha256.Size]byte {
	m := hmac.New(sha256.New, a.cacheKey)
	// Length-prefixed, so that no other (user, password) split of the
	// same bytes gives the same digest.
	m.Write(binary.BigEndian.AppendUint64(nil, uint64(len(user))))
	m.Write([]byte(user))
	m.Write([]byte(password))
	var d [sha256.Size]byte
	m.Sum(d[:0])
	return d
}

func (a *basicAuth) cached(user string, digest [sha256.Size]byte) bool {
	a.mu.Lock()
	e, ok := a.cache[user]
	a.mu.Unlock()
	return ok && a.now().Before(e.expires) && subtle.ConstantTimeCompare(e.digest[:], digest[:]) == 1
}

func (a *basicAuth) remember(user string, digest [sha256.Size]byte) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.cache[user]; !ok && len(a.cache) >= authCacheMax {
		// Full: drop what expired, else the entry closest to expiring.
		// Only after a successful bcrypt check, so the scan is cheap.
		var oldest string
		var oldestExp time.Time
		for u, e := range a.cache {
			if !now.Before(e.expires) {
				delete(a.cache, u)
			} else if oldest == "" || e.expires.Before(oldestExp) {
				oldest, oldestExp = u, e.expires
			}
		}
		if len(a.cache) >= authCacheMax {
			delete(a.cache, oldest)
		}
	}
	a.cache[user] = authCacheEntry{digest: digest, expires: now.Add(authCacheTTL)}
}
