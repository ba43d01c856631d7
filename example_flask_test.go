// The framework packages exist only for the system Python (the default
// build), so this example is left out of the builds for other versions.

//go:build !py310 && !py312 && !py313 && !py314

package wsgi_test

import (
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strings"

	"github.com/gowsgi/wsgi"
)

// Test a Flask app from Go, in process: no sockets, no server.
func ExampleNew_flask() {
	h, err := wsgi.New(wsgi.Options{Dir: "testdata/flaskapp", App: "app:app", Prefix: "/flask"})
	if err != nil {
		log.Fatalf("%+v", err)
	}
	defer h.Close()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/flask/hello/gopher", nil))
	fmt.Println(rec.Code, rec.Body.String())

	rec = httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/flask/json", strings.NewReader(`{"numbers": [1, 2, 3], "label": "sum"}`))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Body)
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"), strings.TrimSpace(string(body)))
	// Output:
	// 200 Hello, gopher!
	// 200 application/json {"count":3,"label":"sum","sum":6}
}
