package wsgi

import "net/http"

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

// basicAuth checks requests against an htpasswd file. (Being written.)
type basicAuth struct{}

func newBasicAuth(cfg *BasicAuth, name string) (*basicAuth, error) {
	return &basicAuth{}, nil
}

// check authenticates r. It returns the request to serve (carrying
// REMOTE_USER and AUTH_TYPE for the environ, without the credentials
// unless configured), or nil after answering 401.
func (a *basicAuth) check(w http.ResponseWriter, r *http.Request) *http.Request {
	return r
}
