package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gowsgi/wsgi/config"
)

func TestLoadGoodFile(t *testing.T) {
	cfg, err := config.Load("testdata/good.toml")
	require.NoError(t, err)
	td, err := filepath.Abs("testdata")
	require.NoError(t, err)
	want := &config.Config{
		Addr:      config.Addrs{"127.0.0.1:0"},
		AccessLog: true,
		LogFormat: "json",
		Apps: []config.App{
			{
				Name:     "blog",
				Prefix:   "/blog", // trailing slash dropped
				Dir:      filepath.Join(td, "blog"),
				Module:   "app",
				Protocol: "wsgi",
				Debug:    true,
				Static:   "always",
				Threads:  4,
				Env:      map[string]string{"BLOG_MODE": "test"},
				LogFile:  filepath.Join(td, "blog.log"),
			},
			{
				Name:     "shop",
				Prefix:   "/shop",
				Dir:      filepath.Join(td, "shop"),
				Module:   "app",
				Callable: "app",
				Protocol: "wsgi",
				Reload:   true,
				Static:   "no",
				Auth: &config.Auth{
					Type:              "basic",
					Htpasswd:          filepath.Join(td, "users.htpasswd"),
					Realm:             "Shop",
					PassAuthorization: true,
				},
			},
		},
	}
	assert.Equal(t, want, cfg)
	assert.NoError(t, cfg.Validate(), "a loaded Config validates")
}

func TestLoadDefaults(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "site"), 0o755))
	path := writeFile(t, dir, "[[app]]\nname = \"site\"\nprefix = \"/\"\ndir = \"site\"\nmodule = \"app\"\n")
	cfg, err := config.Load(path)
	require.NoError(t, err)
	assert.Equal(t, &config.Config{
		LogFormat: "text",
		Apps: []config.App{{
			Name: "site", Prefix: "", Dir: filepath.Join(dir, "site"), Module: "app",
			Protocol: "wsgi", Static: "no",
		}},
	}, cfg)
}

// The listener keys: addr as a string or a list, the Unix socket's mode
// and owner, the PROXY protocol.
func TestLoadListenerKeys(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "site"), 0o755))
	app := "[[app]]\nname = \"site\"\ndir = \"site\"\nmodule = \"app\"\n"
	for _, tc := range []struct {
		name, top string
		want      config.Config
	}{
		{"one addr", `addr = "unix:/run/wsgi.sock"`, config.Config{Addr: config.Addrs{"unix:/run/wsgi.sock"}}},
		{"relative socket path", `addr = "unix:run/wsgi.sock"`, config.Config{Addr: config.Addrs{"unix:" + filepath.Join(dir, "run", "wsgi.sock")}}},
		{"addr list", `addr = ["127.0.0.1:8080", "unix:/run/wsgi.sock"]`,
			config.Config{Addr: config.Addrs{"127.0.0.1:8080", "unix:/run/wsgi.sock"}}},
		{"socket keys", "socket_mode = \"0660\"\nsocket_owner = \"www-data:www-data\"",
			config.Config{SocketMode: "0660", SocketOwner: "www-data:www-data"}},
		{"proxy protocol", "proxy_protocol = true\nproxy_protocol_from = [\"10.0.0.0/8\", \"::1\"]",
			config.Config{ProxyProtocol: true, ProxyProtocolFrom: []string{"10.0.0.0/8", "::1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Load(writeFile(t, dir, tc.top+"\n"+app))
			require.NoError(t, err)
			got := *cfg
			got.Apps, got.LogFormat = nil, ""
			assert.Equal(t, tc.want, got)
		})
	}
}

// The keys for requests and sys.path, from the file to the app's Options;
// relative paths are relative to the file's directory.
func TestLoadRequestKeys(t *testing.T) {
	const app = "[[app]]\nname = \"site\"\ndir = \"site\"\nmodule = \"app\"\n"
	// mapped is the part of wsgi.Options these keys set.
	type mapped struct {
		QueueTimeout, RequestTimeout, BodyReadTimeout time.Duration
		MaxBodyBytes                                  int64
		TrustedProxies, PythonPath                    []string
		Virtualenv, WebSocketCompression              string
		Interpreters                                  int
	}
	abs := t.TempDir()
	for _, tc := range []struct {
		name string
		keys string
		want func(dir string) mapped
	}{
		{"none", "", func(string) mapped { return mapped{} }},
		{"queue_timeout", `queue_timeout = "10s"`, func(string) mapped { return mapped{QueueTimeout: 10 * time.Second} }},
		{"queue_timeout zero", `queue_timeout = "0"`, func(string) mapped { return mapped{} }},
		{"request_timeout", `request_timeout = "1m30s"`, func(string) mapped { return mapped{RequestTimeout: 90 * time.Second} }},
		{"body_timeout", `body_timeout = "250ms"`, func(string) mapped { return mapped{BodyReadTimeout: 250 * time.Millisecond} }},
		{"body_timeout negative is none", `body_timeout = "-1s"`, func(string) mapped { return mapped{BodyReadTimeout: -time.Second} }},
		{"max_body", `max_body = 10485760`, func(string) mapped { return mapped{MaxBodyBytes: 10 << 20} }},
		{"websocket_compression", `websocket_compression = "off"`, func(string) mapped { return mapped{WebSocketCompression: "off"} }},
		{"trusted_proxies", `trusted_proxies = ["10.0.0.0/8", "::1", "192.168.1.7"]`,
			func(string) mapped { return mapped{TrustedProxies: []string{"10.0.0.0/8", "::1", "192.168.1.7"}} }},
		{"python_path", `python_path = ["lib", "vendor/more", ` + strconv.Quote(abs) + `]`, func(dir string) mapped {
			return mapped{PythonPath: []string{filepath.Join(dir, "lib"), filepath.Join(dir, "vendor", "more"), abs}}
		}},
		{"virtualenv", `virtualenv = "envs/../venv"`, func(dir string) mapped { return mapped{Virtualenv: filepath.Join(dir, "venv")} }},
		{"virtualenv absolute", `virtualenv = ` + strconv.Quote(abs), func(string) mapped { return mapped{Virtualenv: abs} }},
		{"interpreters", `interpreters = 2`, func(string) mapped { return mapped{Interpreters: 2} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, d := range []string{"site", "lib", "vendor/more", "venv", "envs"} {
				require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
			}
			cfg, err := config.Load(writeFile(t, dir, app+tc.keys+"\n"))
			require.NoError(t, err)
			require.Len(t, cfg.Apps, 1)
			require.NoError(t, cfg.Validate(), "a loaded Config validates")

			o := firstOptions(t, cfg)[0]
			assert.Equal(t, tc.want(dir), mapped{
				QueueTimeout: o.QueueTimeout, RequestTimeout: o.RequestTimeout, BodyReadTimeout: o.BodyReadTimeout,
				MaxBodyBytes: o.MaxBodyBytes, TrustedProxies: o.TrustedProxies, PythonPath: o.PythonPath,
				Virtualenv: o.Virtualenv, WebSocketCompression: o.WebSocketCompression,
				Interpreters: o.Interpreters,
			})
		})
	}
}

// writeFile writes an apps.toml into dir and returns its path.
func writeFile(t *testing.T, dir, content string) string {
	t.Helper()
	path := filepath.Join(dir, "apps.toml")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	return path
}

// Each bad file's message names the file, the line and the key.
func TestLoadErrors(t *testing.T) {
	const blog = `[[app]]
name = "blog"
prefix = "/blog"
dir = "blog"
module = "app"
`
	for _, tc := range []struct {
		name string
		file string
		want []string // each a line of the message, after the directory
	}{
		{"unknown app key", blog + "prefx = \"/b\"\n",
			[]string{`apps.toml:6: app "blog": key "prefx" is not allowed`}},
		{"unknown top-level key", "adr = \"x\"\n" + blog,
			[]string{`apps.toml:1: key "adr" is not allowed`}},
		{"unknown auth key", blog + "[app.auth]\nhtpasswd = \"blog/app.py\"\nrealmm = \"x\"\n",
			[]string{`apps.toml:8: app "blog": key "auth.realmm" is not allowed`}},
		{"unknown keys in two apps", blog + "colour = 1\n[[app]]\nname = \"shop\"\nprefx = \"/shop\"\n",
			[]string{
				`apps.toml:6: app "blog": key "colour" is not allowed`,
				`apps.toml:9: app "shop": key "prefx" is not allowed`,
			}},
		{"threads string", blog + "threads = \"4\"\n",
			[]string{`apps.toml:6: app "blog": "threads" must be an integer, not a string`}},
		{"threads float", blog + "threads = 1.5\n",
			[]string{`apps.toml:6: app "blog": "threads" must be an integer, not a float`}},
		{"debug string", blog + "debug = \"yes\"\n",
			[]string{`apps.toml:6: app "blog": "debug" must be a boolean, not a string`}},
		{"static bool", blog + "static = true\n",
			[]string{`apps.toml:6: app "blog": "static" must be a string ("always" or "no"), not a boolean`}},
		{"env value", blog + "[app.env]\nMODE = 1\n",
			[]string{`apps.toml:7: app "blog": "env.MODE" must be a string, not an integer`}},
		{"access_log", "access_log = \"on\"\n" + blog,
			[]string{`apps.toml:1: "access_log" must be a boolean, not a string`}},
		{"app not a table", "app = 3\n",
			[]string{`apps.toml:1: "app" must be an array of tables ([[app]]), not an integer`}},
		{"syntax", blog + "threads = \n",
			[]string{`apps.toml:6: app "blog": `}},
		{"duplicate key", blog + "module = \"other\"\n",
			[]string{`apps.toml:6: app "blog": key "module" is defined twice`}},
		{"unknown table", blog + "[server]\nport = 1\n",
			[]string{`apps.toml:6: key "server" is not allowed`}},
		{"env inline value", blog + "env = { MODE = 1 }\n",
			[]string{`apps.toml:6: app "blog": "env" values must be strings, not an integer`}},
		{"duplicate prefix", blog + "\n[[app]]\nname = \"shop\"\nprefix = \"/blog/\"\ndir = \"shop\"\nmodule = \"app\"\n",
			[]string{`apps.toml:9: app "shop": prefix "/blog" is already used by app "blog" (line 3)`}},
		{"two root apps", "[[app]]\nname = \"a\"\ndir = \"blog\"\nmodule = \"app\"\n[[app]]\nname = \"b\"\nprefix = \"/\"\ndir = \"shop\"\nmodule = \"app\"\n",
			[]string{`apps.toml:7: app "b": prefix "/" is already used by app "a" (line 1)`}},
		{"duplicate name", blog + "[[app]]\nname = \"blog\"\nprefix = \"/shop\"\ndir = \"shop\"\nmodule = \"app\"\n",
			[]string{`apps.toml:7: app "blog": name "blog" is already used by the app at line 2`}},
		{"missing name", "[[app]]\nprefix = \"/x\"\ndir = \"blog\"\nmodule = \"app\"\n",
			[]string{`apps.toml:1: app #1: missing key "name"`}},
		{"missing dir", "\n[[app]]\nname = \"blog\"\nmodule = \"app\"\n",
			[]string{`apps.toml:2: app "blog": missing key "dir"`}},
		{"dir does not exist", "[[app]]\nname = \"blog\"\ndir = \"./nope\"\nmodule = \"app\"\n",
			[]string{`apps.toml:3: app "blog": dir "./nope" does not exist`}},
		{"dir is a file", "[[app]]\nname = \"blog\"\ndir = \"blog/app.py\"\nmodule = \"app\"\n",
			[]string{`apps.toml:3: app "blog": dir "blog/app.py" is not a directory`}},
		{"missing module", "[[app]]\nname = \"blog\"\ndir = \"blog\"\n",
			[]string{`apps.toml:1: app "blog": missing key "module"`}},
		{"module with .py", "[[app]]\nname = \"blog\"\ndir = \"blog\"\nmodule = \"app.py\"\n",
			[]string{`apps.toml:4: app "blog": module "app.py": write it without .py`}},
		{"bad callable", blog + "callable = \"make app\"\n",
			[]string{`apps.toml:6: app "blog": callable "make app" is not a Python name`}},
		{"bad prefix", "[[app]]\nname = \"blog\"\nprefix = \"blog\"\ndir = \"blog\"\nmodule = \"app\"\n",
			[]string{`apps.toml:3: app "blog": prefix "blog" must start with /`}},
		{"prefix with dots", "[[app]]\nname = \"blog\"\nprefix = \"/a/../b\"\ndir = \"blog\"\nmodule = \"app\"\n",
			[]string{`apps.toml:3: app "blog": prefix "/a/../b" must not contain . or .. segments`}},
		{"protocol", blog + "protocol = \"cgi\"\n",
			[]string{`apps.toml:6: app "blog": protocol "cgi" must be "wsgi", "asgi" or "auto"`}},
		{"static", blog + "static = \"sometimes\"\n",
			[]string{`apps.toml:6: app "blog": static "sometimes" must be "always" or "no"`}},
		{"negative threads", blog + "threads = -2\n",
			[]string{`apps.toml:6: app "blog": threads -2 must not be negative`}},
		{"negative interpreters", blog + "interpreters = -1\n",
			[]string{`apps.toml:6: app "blog": interpreters -1 must not be negative`}},
		{"websocket_compression", blog + "websocket_compression = \"max\"\n",
			[]string{`apps.toml:6: app "blog": websocket_compression "max": want no-context-takeover, context-takeover or off`}},
		{"auth type", blog + "auth = { type = \"digest\", htpasswd = \"blog/app.py\" }\n",
			[]string{`apps.toml:6: app "blog": auth.type "digest" is not supported (want "basic")`}},
		{"auth without htpasswd", blog + "\n[app.auth]\nrealm = \"Blog\"\n",
			[]string{`apps.toml:7: app "blog": missing key "auth.htpasswd"`}},
		{"htpasswd does not exist", blog + "[app.auth]\nhtpasswd = \"users\"\n",
			[]string{`apps.toml:7: app "blog": auth.htpasswd "users" does not exist`}},
		{"reserved env key", blog + "env = { \"wsgi.x\" = \"1\" }\n",
			[]string{`apps.toml:6: app "blog": env key "wsgi.x" is reserved`}},
		{"log_file directory", blog + "log_file = \"logs/blog.log\"\n",
			[]string{`apps.toml:6: app "blog": log_file "logs/blog.log": directory "logs" does not exist`}},
		{"log_format", "log_format = \"xml\"\n" + blog,
			[]string{`apps.toml:1: log_format "xml" must be "text" or "json"`}},
		{"workers negative", "workers = -3\n" + blog,
			[]string{`apps.toml:1: workers must be a positive integer or "auto"`}},
		{"workers word", "workers = \"many\"\n" + blog,
			[]string{`apps.toml:1: workers must be a positive integer or "auto"`}},
		{"workers float", "\nworkers = 1.5\n" + blog,
			[]string{`apps.toml:2: workers must be a positive integer or "auto"`}},
		{"max_requests negative", "max_requests = -1\n" + blog,
			[]string{`apps.toml:1: max_requests -1 must not be negative`}},
		{"max_requests_jitter string", "max_requests_jitter = \"10\"\n" + blog,
			[]string{`apps.toml:1: "max_requests_jitter" must be an integer, not a string`}},
		{"max_rss negative", "max_rss = -512\n" + blog,
			[]string{`apps.toml:1: max_rss -512 must not be negative`}},
		{"addr", "addr = \"8080\"\n" + blog,
			[]string{`apps.toml:1: addr "8080" is neither host:port nor unix:/path`}},
		{"addr list", "addr = [\"127.0.0.1:8080\", \"unix:\", 8080]\n" + blog,
			[]string{`apps.toml:1: "addr" must be a string or an array of strings, not an integer`}},
		{"addr unix without path", "addr = [\"127.0.0.1:8080\", \"unix:\"]\n" + blog,
			[]string{`apps.toml:1: addr "unix:" has no socket path`}},
		{"socket_mode", "socket_mode = \"0999\"\n" + blog,
			[]string{`apps.toml:1: socket_mode "0999" is not octal permission bits such as "0660"`}},
		{"socket_mode integer", "socket_mode = 0o660\n" + blog,
			[]string{`apps.toml:1: "socket_mode" must be a string (octal, such as "0660"), not an integer`}},
		{"socket_owner", "socket_owner = \"a:b:c\"\n" + blog,
			[]string{`apps.toml:1: socket_owner "a:b:c" is not user[:group]`}},
		{"proxy_protocol_from", "proxy_protocol_from = [\"proxy.local\"]\n" + blog,
			[]string{`apps.toml:1: proxy_protocol_from "proxy.local" is neither an address nor a CIDR network`}},
		{"no apps", "addr = \"127.0.0.1:8080\"\n",
			[]string{`apps.toml: no apps: add an [[app]] table`}},
		{"several problems", "[[app]]\nname = \"blog\"\nprefix = \"x\"\ndir = \"nope\"\nthreads = -1\n",
			[]string{
				`apps.toml:1: app "blog": missing key "module"`,
				`apps.toml:3: app "blog": prefix "x" must start with /`,
				`apps.toml:4: app "blog": dir "nope" does not exist`,
				`apps.toml:5: app "blog": threads -1 must not be negative`,
			}},
		{"queue_timeout not a duration", blog + "queue_timeout = \"30 seconds\"\n",
			[]string{`apps.toml:6: app "blog": queue_timeout "30 seconds" is not a duration (such as "30s" or "1m")`}},
		{"queue_timeout negative", blog + "queue_timeout = \"-1s\"\n",
			[]string{`apps.toml:6: app "blog": queue_timeout "-1s" must not be negative`}},
		{"queue_timeout integer", blog + "queue_timeout = 30\n",
			[]string{`apps.toml:6: app "blog": "queue_timeout" must be a string (a duration such as "30s"), not an integer`}},
		{"request_timeout not a duration", blog + "request_timeout = \"1\"\n",
			[]string{`apps.toml:6: app "blog": request_timeout "1" is not a duration (such as "30s" or "1m")`}},
		{"request_timeout negative", blog + "request_timeout = \"-5m\"\n",
			[]string{`apps.toml:6: app "blog": request_timeout "-5m" must not be negative`}},
		{"body_timeout not a duration", blog + "body_timeout = \"none\"\n",
			[]string{`apps.toml:6: app "blog": body_timeout "none" is not a duration (such as "30s" or "1m")`}},
		{"max_body negative", blog + "max_body = -1\n",
			[]string{`apps.toml:6: app "blog": max_body -1 must not be negative`}},
		{"max_body string", blog + "max_body = \"16MiB\"\n",
			[]string{`apps.toml:6: app "blog": "max_body" must be an integer (bytes), not a string`}},
		{"trusted_proxies items", blog + "trusted_proxies = [\n  \"10.0.0.0/8\",\n  \"proxy.local\",\n  \"10.0.0.0/33\",\n]\n",
			[]string{
				`apps.toml:8: app "blog": trusted_proxies "proxy.local" is neither an address nor a CIDR network`,
				`apps.toml:9: app "blog": trusted_proxies "10.0.0.0/33" is neither an address nor a CIDR network`,
			}},
		{"trusted_proxies string", blog + "trusted_proxies = \"10.0.0.1\"\n",
			[]string{`apps.toml:6: app "blog": "trusted_proxies" must be an array of strings, not a string`}},
		{"python_path items", blog + "python_path = [\"blog\",\n  \"lib\", \"blog/app.py\"]\n",
			[]string{
				`apps.toml:7: app "blog": python_path "lib" does not exist`,
				`apps.toml:7: app "blog": python_path "blog/app.py" is not a directory`,
			}},
		{"python_path empty item", blog + "python_path = [\"\"]\n",
			[]string{`apps.toml:6: app "blog": python_path has an empty directory`}},
		{"python_path string", blog + "python_path = \"blog\"\n",
			[]string{`apps.toml:6: app "blog": "python_path" must be an array of strings, not a string`}},
		{"virtualenv does not exist", blog + "virtualenv = \"venv\"\n",
			[]string{`apps.toml:6: app "blog": virtualenv "venv" does not exist`}},
		{"virtualenv is a file", blog + "virtualenv = \"blog/app.py\"\n",
			[]string{`apps.toml:6: app "blog": virtualenv "blog/app.py" is not a directory`}},
		{"inline array of apps", "app = [\n  { name = \"blog\", dir = \"blog\", module = \"app\" },\n  { name = \"shop\", dir = \"nope\", module = \"app\" },\n]\n",
			[]string{`apps.toml:3: app "shop": dir "nope" does not exist`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.Mkdir(filepath.Join(dir, "blog"), 0o755))
			require.NoError(t, os.Mkdir(filepath.Join(dir, "shop"), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "blog", "app.py"), nil, 0o644))
			path := writeFile(t, dir, tc.file)

			cfg, err := config.Load(path)
			require.Error(t, err)
			assert.Nil(t, cfg)
			msg := err.Error()
			last := -1
			for _, w := range tc.want {
				assert.Contains(t, msg, w)
				i := strings.Index(msg, w)
				assert.Greater(t, i, last, "problems in the order of their lines: %s", msg)
				last = i
			}
			assert.True(t, strings.HasPrefix(msg, path), "the message starts with the file: %s", msg)
			if len(tc.want) > 1 && strings.HasPrefix(tc.want[0], "apps.toml:") && strings.HasPrefix(tc.want[1], "apps.toml:") {
				assert.Len(t, strings.Split(msg, "\n"), len(tc.want), "one problem a line: %s", msg)
			}
			var ce *config.Error
			require.True(t, errors.As(err, &ce), "%T", err)
			assert.Equal(t, path, ce.File)
		})
	}
}

func TestLoadErrorFields(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "[[app]]\nname = \"blog\"\ndir = \"nope\"\nmodule = \"app\"\n")
	_, err := config.Load(path)
	var ce *config.Error
	require.True(t, errors.As(err, &ce))
	assert.Equal(t, &config.Error{File: path, Line: 3, App: "blog", Key: "dir", Msg: `dir "nope" does not exist`}, ce)
}

func TestLoadMissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "none.toml"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "none.toml")
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestValidate(t *testing.T) {
	td, err := filepath.Abs("testdata")
	require.NoError(t, err)
	blog := config.App{Name: "blog", Prefix: "/blog", Dir: filepath.Join(td, "blog"), Module: "app"}
	shop := config.App{Name: "shop", Prefix: "/shop", Dir: filepath.Join(td, "shop"), Module: "app", Callable: "app"}
	with := func(a config.App, f func(*config.App)) config.App { f(&a); return a }

	for _, tc := range []struct {
		name string
		cfg  config.Config
		want string // "" for valid
	}{
		{"two apps", config.Config{Apps: []config.App{blog, shop}}, ""},
		{"root app", config.Config{Apps: []config.App{with(blog, func(a *config.App) { a.Prefix = "/" })}}, ""},
		{"all settings", config.Config{Addr: config.Addrs{":8080"}, AccessLog: true, LogFormat: "json", Apps: []config.App{with(blog, func(a *config.App) {
			a.Protocol, a.Static, a.Debug, a.Threads = "auto", "always", true, 3
			a.Env = map[string]string{"X": "1"}
			a.Auth = &config.Auth{Htpasswd: filepath.Join(td, "users.htpasswd")}
			a.LogFile = filepath.Join(t.TempDir(), "blog.log")
			a.QueueTimeout, a.RequestTimeout, a.BodyTimeout, a.MaxBody = "5s", "1m", "-1s", 1024
			a.TrustedProxies = []string{"10.0.0.0/8", "::1"}
			a.PythonPath = []string{filepath.Join(td, "shop")}
			a.Virtualenv = t.TempDir()
		})}}, ""},
		{"no apps", config.Config{}, "wsgi: no apps: add an [[app]] table"},
		{"duplicate prefix", config.Config{Apps: []config.App{blog, with(shop, func(a *config.App) { a.Prefix = "/blog/" })}},
			`wsgi: app "shop": prefix "/blog" is already used by app "blog"`},
		{"duplicate name", config.Config{Apps: []config.App{blog, with(shop, func(a *config.App) { a.Name = "blog" })}},
			`wsgi: app "blog": name "blog" is already used by the app #1`},
		{"no name", config.Config{Apps: []config.App{with(blog, func(a *config.App) { a.Name = "" })}},
			`wsgi: app #1: missing key "name"`},
		{"no dir", config.Config{Apps: []config.App{with(blog, func(a *config.App) { a.Dir = "" })}},
			`wsgi: app "blog": missing key "dir"`},
		{"no module", config.Config{Apps: []config.App{with(blog, func(a *config.App) { a.Module = "" })}},
			`wsgi: app "blog": missing key "module"`},
		{"dir does not exist", config.Config{Apps: []config.App{with(blog, func(a *config.App) { a.Dir = "nope" })}},
			`wsgi: app "blog": dir "nope" does not exist`},
		{"protocol", config.Config{Apps: []config.App{with(blog, func(a *config.App) { a.Protocol = "http" })}},
			`wsgi: app "blog": protocol "http" must be`},
		{"static", config.Config{Apps: []config.App{with(blog, func(a *config.App) { a.Static = "yes" })}},
			`wsgi: app "blog": static "yes" must be "always" or "no"`},
		{"auth", config.Config{Apps: []config.App{with(blog, func(a *config.App) { a.Auth = &config.Auth{Type: "basic"} })}},
			`wsgi: app "blog": missing key "auth.htpasswd"`},
		{"threads", config.Config{Apps: []config.App{with(blog, func(a *config.App) { a.Threads = -1 })}},
			`wsgi: app "blog": threads -1 must not be negative`},
		{"queue_timeout", config.Config{Apps: []config.App{with(blog, func(a *config.App) { a.QueueTimeout = "soon" })}},
			`wsgi: app "blog": queue_timeout "soon" is not a duration`},
		{"request_timeout", config.Config{Apps: []config.App{with(blog, func(a *config.App) { a.RequestTimeout = "-1s" })}},
			`wsgi: app "blog": request_timeout "-1s" must not be negative`},
		{"body_timeout", config.Config{Apps: []config.App{with(blog, func(a *config.App) { a.BodyTimeout = "1 minute" })}},
			`wsgi: app "blog": body_timeout "1 minute" is not a duration`},
		{"max_body", config.Config{Apps: []config.App{with(blog, func(a *config.App) { a.MaxBody = -10 })}},
			`wsgi: app "blog": max_body -10 must not be negative`},
		{"trusted_proxies", config.Config{Apps: []config.App{with(blog, func(a *config.App) { a.TrustedProxies = []string{"10.0.0.1", "x"} })}},
			`wsgi: app "blog": trusted_proxies "x" is neither an address nor a CIDR network`},
		{"python_path", config.Config{Apps: []config.App{with(blog, func(a *config.App) { a.PythonPath = []string{"nope"} })}},
			`wsgi: app "blog": python_path "nope" does not exist`},
		{"virtualenv", config.Config{Apps: []config.App{with(blog, func(a *config.App) { a.Virtualenv = "nope" })}},
			`wsgi: app "blog": virtualenv "nope" does not exist`},
		{"workers", config.Config{Workers: -2, Apps: []config.App{blog}},
			`wsgi: workers must be a positive integer or "auto"`},
		{"workers auto", config.Config{Workers: config.WorkersAuto, MaxRequests: 10, MaxRequestsJitter: 5, MaxRSS: 100, Apps: []config.App{blog}}, ""},
		{"max_rss", config.Config{MaxRSS: -1, Apps: []config.App{blog}},
			`wsgi: max_rss -1 must not be negative`},
		{"log format", config.Config{LogFormat: "yaml", Apps: []config.App{blog}},
			`wsgi: log_format "yaml" must be "text" or "json"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.cfg
			err := tc.cfg.Validate()
			if tc.want == "" {
				assert.NoError(t, err)
			} else {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.want)
				var ce *config.Error
				require.True(t, errors.As(err, &ce))
				assert.Zero(t, ce.Line)
				assert.Empty(t, ce.File)
			}
			assert.Equal(t, before, tc.cfg, "Validate must not change the Config")
		})
	}
}

func TestWorkers(t *testing.T) {
	for _, tc := range []struct {
		text  string
		want  config.Workers
		count int
	}{
		{"auto", config.WorkersAuto, runtime.NumCPU()},
		{"1", 1, 1},
		{"4", 4, 4},
	} {
		t.Run(tc.text, func(t *testing.T) {
			var w config.Workers
			require.NoError(t, w.UnmarshalText([]byte(tc.text)))
			assert.Equal(t, tc.want, w)
			assert.Equal(t, tc.count, w.Count())
			assert.Equal(t, tc.text, w.String())
		})
	}
	assert.Equal(t, 1, config.Workers(0).Count(), "zero means one process")
	for _, bad := range []string{"0", "-1", "many", ""} {
		var w config.Workers
		assert.Error(t, w.UnmarshalText([]byte(bad)), bad)
	}
}

// The example in the package documentation is a valid file, but for the
// paths it names, which do not exist here.
func TestDocExample(t *testing.T) {
	src, err := os.ReadFile("config.go")
	require.NoError(t, err)
	_, doc, found := strings.Cut(string(src), "// # The file\n")
	require.True(t, found)
	doc, _, _ = strings.Cut(doc, "\n// Load ")
	var toml strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if code, ok := strings.CutPrefix(line, "//\t"); ok {
			toml.WriteString(code + "\n")
		}
	}
	require.Contains(t, toml.String(), "[[app]]")
	path := writeFile(t, t.TempDir(), toml.String())

	_, err = config.Load(path)
	require.Error(t, err)
	for _, line := range strings.Split(err.Error(), "\n") {
		assert.Regexp(t, `apps.toml:\d+: app "(blog|shop)": (dir "(blog|/srv/shop)" does not exist|auth.htpasswd "users.htpasswd" does not exist|log_file "logs/blog.log": directory "logs" does not exist|python_path "lib" does not exist|virtualenv "venv" does not exist)$`, line)
	}
}
