package wsgi_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/gowsgi/wsgi"
)

// Serve testdata/hello.py. Any PEP 3333 app works the same way.
func ExampleNew() {
	h, err := wsgi.New(wsgi.Options{Dir: "testdata", App: "hello:application"})
	if err != nil {
		log.Fatalf("%+v", err) // %+v prints the Python traceback
	}
	defer h.Close()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
	// Output: 200 text/plain Hello, world!
}

// Mount a Python app under a prefix of a ServeMux, next to a Go route.
// The app sees the prefix as SCRIPT_NAME, so the URLs it builds are right.
func ExampleNew_mux() {
	py, err := wsgi.New(wsgi.Options{Dir: "testdata", App: "behave"})
	if err != nil {
		log.Fatalf("%+v", err)
	}
	defer py.Close()

	mux := http.NewServeMux()
	mux.Handle("/py/", http.StripPrefix("/py", py))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok from Go")
	})

	for _, path := range []string{"/health", "/py/tuple"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		fmt.Println(path, rec.Code, rec.Body.String())
	}
	// Output:
	// /health 200 ok from Go
	// /py/tuple 200 tuple
}

// Go middleware can hand values to the app's environ: here an
// authentication layer sets REMOTE_USER.
func ExampleWithEnviron() {
	h, err := wsgi.New(wsgi.Options{Dir: "testdata", App: "whoami"})
	if err != nil {
		log.Fatalf("%+v", err)
	}
	defer h.Close()

	auth := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user := r.Header.Get("X-Demo-User") // a real one checks a session or token
			if user == "" {
				http.Error(w, "who are you?", http.StatusUnauthorized)
				return
			}
			ctx := wsgi.WithEnviron(r.Context(), map[string]string{"REMOTE_USER": user, "AUTH_TYPE": "Demo"})
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}

	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Demo-User", "alice")
	rec := httptest.NewRecorder()
	auth(h).ServeHTTP(rec, r)
	fmt.Println(rec.Body.String())
	// Output: alice (Demo)
}
