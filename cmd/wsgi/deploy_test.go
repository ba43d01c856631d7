package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// deployDir holds the example systemd units and Kubernetes manifests.
var deployDir = filepath.Join("..", "..", "deploy")

// TestDeploySystemdUnits: the units pass systemd-analyze verify (with
// ExecStart pointed at the built binary, which must exist), and the
// command accepts the flags of their ExecStart.
func TestDeploySystemdUnits(t *testing.T) {
	t.Parallel()
	service, err := os.ReadFile(filepath.Join(deployDir, "systemd", "wsgi.service"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^ExecStart=/usr/local/bin/wsgi (.*)$`).FindSubmatch(service)
	require.NotNil(t, m, "ExecStart runs /usr/local/bin/wsgi")
	// The config file does not exist here: loading it fails (1), after
	// the flags parsed (an unknown or bad flag exits 2).
	code, _, stderr := runBinary(t, strings.Fields(string(m[1]))...)
	assert.Equal(t, 1, code, stderr)
	assert.Contains(t, stderr, "/etc/wsgi/apps.toml")

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze (Debian package systemd)")
	}
	dir := t.TempDir()
	socket, err := os.ReadFile(filepath.Join(deployDir, "systemd", "wsgi.socket"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "wsgi.socket"), socket, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "wsgi.service"),
		[]byte(strings.ReplaceAll(string(service), "/usr/local/bin/wsgi", binary)), 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, analyze, "verify",
		filepath.Join(dir, "wsgi.socket"), filepath.Join(dir, "wsgi.service")).CombinedOutput()
	assert.NoError(t, err, "%s", out)
	assert.Empty(t, strings.TrimSpace(string(out)), "no warnings")
}

// TestDeployKubernetes: the manifests parse (Python's yaml, Debian's
// python3-yaml) into a Deployment whose probes ask the admin listener
// and a Service in front of its http port.
func TestDeployKubernetes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "python3", "-c",
		"import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
		filepath.Join(deployDir, "kubernetes", "wsgi.yaml")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	type probe struct {
		HTTPGet struct {
			Path string `json:"path"`
			Port string `json:"port"`
		} `json:"httpGet"`
	}
	var docs []struct {
		Kind string `json:"kind"`
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Args  []string `json:"args"`
						Ports []struct {
							Name          string `json:"name"`
							ContainerPort int    `json:"containerPort"`
						} `json:"ports"`
						StartupProbe, LivenessProbe, ReadinessProbe probe
					} `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
			Ports []struct {
				TargetPort string `json:"targetPort"`
			} `json:"ports"`
		} `json:"spec"`
	}
	require.NoError(t, json.Unmarshal(out, &docs))
	require.Len(t, docs, 2)
	assert.Equal(t, "Deployment", docs[0].Kind)
	assert.Equal(t, "Service", docs[1].Kind)
	c := docs[0].Spec.Template.Spec.Containers[0]
	assert.Contains(t, c.Args, "-admin-addr=0.0.0.0:9090")
	assert.Contains(t, c.Args, "-admin-public")
	assert.Contains(t, c.Args, "-addr=0.0.0.0:8080")
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	assert.Equal(t, map[string]int{"http": 8080, "admin": 9090}, ports)
	for _, p := range []struct {
		probe probe
		path  string
	}{{c.StartupProbe, "/healthz"}, {c.LivenessProbe, "/healthz"}, {c.ReadinessProbe, "/readyz"}} {
		assert.Equal(t, p.path, p.probe.HTTPGet.Path)
		assert.Equal(t, "admin", p.probe.HTTPGet.Port)
	}
	require.Len(t, docs[1].Spec.Ports, 1)
	assert.Equal(t, "http", docs[1].Spec.Ports[0].TargetPort, "the Service exposes the app, not the admin listener")
}
