package main_test

// Tests of gritsd.toml as an operator meets it: written commented by
// init, checked by gritsd config check, migrated from config.json,
// overridden by flags, and its secrets' permissions enforced.

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// setConfig sets key = value (TOML) in d's gritsd.toml, replacing the
// line that sets it or its commented-out default, as a person would.
func (d dataDir) setConfig(t *testing.T, key, value string) {
	t.Helper()
	p := d.path("gritsd.toml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^(# )?` + regexp.QuoteMeta(key) + ` = .*$`)
	line := key + " = " + value
	var out string
	if re.Match(b) {
		out = re.ReplaceAllLiteralString(string(b), line)
	} else {
		out = string(b) + line + "\n"
	}
	if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestConfigCheck(t *testing.T) {
	t.Parallel()
	d := newOrigin(t)
	r := d.must(t, "config", "check")
	for _, want := range []string{`role = "origin"`, "# gritsd.toml line", `listen = ":7433"`, "# default", `http2 = "grits"`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("config check: want %q on stdout\n%s", want, r)
		}
	}
	if !strings.Contains(r.stderr, "gritsd.toml: valid") {
		t.Errorf("config check: want \"valid\" on stderr\n%s", r)
	}

	// Every setting of a new file is commented and documented.
	b, err := os.ReadFile(d.path("gritsd.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# listen = \":7433\"", "# Flag: --listen.", "node.key, site.key", "# ==== Logging ===="} {
		if !strings.Contains(string(b), want) {
			t.Errorf("gritsd.toml from init lacks %q", want)
		}
	}

	d.setConfig(t, "gossip_profile", `"wan"`)
	d.setConfig(t, "sw_paths", `["/static/", "/media/"]`)
	r = d.must(t, "config", "check", "--json")
	var cfg map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &cfg); err != nil {
		t.Fatalf("config check --json: %v\n%s", err, r)
	}
	if cfg["gossip_profile"] != "wan" || len(cfg["sw_paths"].([]any)) != 2 {
		t.Errorf("config check --json: %v", cfg)
	}

	// Mistakes: each named with its key and its line, all at once.
	good, _ := os.ReadFile(d.path("gritsd.toml"))
	lines := strings.Count(string(good), "\n")
	bad := string(good) + "lisen = \":1\"\nretain_roots = \"ten\"\n"
	if err := os.WriteFile(d.path("gritsd.toml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	r = d.run(t, "config", "check")
	for _, want := range []string{
		d.path("gritsd.toml") + ":" + itoa(lines+1) + ": lisen: unknown setting; did you mean listen?",
		d.path("gritsd.toml") + ":" + itoa(lines+2) + ": retain_roots: want an integer",
	} {
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("want exit 1 and %q\n%s", want, r)
		}
	}
	// Any command that opens the directory refuses it the same way.
	if r := d.run(t, "ls"); r.code != 1 || !strings.Contains(r.stderr, "lisen: unknown setting") {
		t.Errorf("ls with a bad config: want exit 1 naming the key\n%s", r)
	}

	// What only serve would notice is checked too.
	if err := os.WriteFile(d.path("gritsd.toml"), good, 0o644); err != nil {
		t.Fatal(err)
	}
	d.setConfig(t, "sw_scope", `"app/"`)
	d.setConfig(t, "tls_cert", `"/nonexistent/cert.pem"`)
	d.setConfig(t, "tls_key", `"/nonexistent/key.pem"`)
	r = d.run(t, "config", "check")
	for _, want := range []string{"sw_scope: service worker scope", "tls_cert: stat /nonexistent/cert.pem"} {
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("want exit 1 and %q\n%s", want, r)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestConfigMigratesJSON: a data directory from before gritsd.toml
// (config.json) works as it is, and its first command migrates it.
func TestConfigMigratesJSON(t *testing.T) {
	t.Parallel()
	d := newOrigin(t)
	d.setConfig(t, "gossip_profile", `"wan"`)
	cfgJSON := d.must(t, "config", "check", "--json").stdout
	if err := os.Remove(d.path("gritsd.toml")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.path("config.json"), []byte(cfgJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	r := d.run(t, "log")
	if r.code != 0 || !strings.Contains(r.stderr, "migrated config.json to gritsd.toml") {
		t.Errorf("first command: want exit 0 and a line about the migration\n%s", r)
	}
	if b, err := os.ReadFile(d.path("config.json.bak")); err != nil || string(b) != cfgJSON {
		t.Errorf("config.json.bak: %v; want the old file kept", err)
	}
	if _, err := os.Stat(d.path("config.json")); err == nil {
		t.Errorf("config.json still there after the migration")
	}
	b, err := os.ReadFile(d.path("gritsd.toml"))
	if err != nil || !strings.Contains(string(b), "gossip_profile = \"wan\"") {
		t.Errorf("gritsd.toml: %v, want the migrated setting\n%s", err, b)
	}
	if r := d.must(t, "config", "check", "--json"); r.stdout != cfgJSON {
		t.Errorf("settings changed in the migration:\n%s\nwant\n%s", r.stdout, cfgJSON)
	}
}

// TestConfigSecretsRefused: a key file others can read stops gritsd with
// the file named and the fix.
func TestConfigSecretsRefused(t *testing.T) {
	t.Parallel()
	d := newOrigin(t)
	if err := os.Chmod(d.path("site.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"ls"}, {"serve"}, {"config", "check"}} {
		r := d.run(t, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "chmod 600 "+d.path("site.key")) {
			t.Errorf("want exit 1 and the chmod to run\n%s", r)
		}
	}
}

// TestConfigFlagsOverride: serve takes its settings from gritsd.toml,
// and a flag overrides the setting it names.
func TestConfigFlagsOverride(t *testing.T) {
	t.Parallel()
	d := newOrigin(t)
	d.setConfig(t, "https_listen", `"127.0.0.1:0"`)
	d.setConfig(t, "public_url", `"https://from-config.example"`)
	d.setConfig(t, "gossip", `"127.0.0.1:0"`)
	d.setConfig(t, "gossip_profile", `"local"`)
	d.setConfig(t, "http2", `"go"`)
	s := startServe(t, d)
	eventually(t, serveStartTimeout, 20*time.Millisecond, func() error {
		if !strings.Contains(s.stderr.String(), `"http2":"go"`) {
			return fmt.Errorf("http2 = \"go\" in gritsd.toml: want the gateway on Go's HTTP/2 server")
		}
		return nil
	})
	httpsLine := regexp.MustCompile(`(?m)^https on 127\.0\.0\.1:\d+ \((.*)\)$`)
	if m := httpsLine.FindStringSubmatch(s.stderr.String()); m == nil || m[1] != "https://from-config.example" {
		t.Errorf("want the URL from gritsd.toml: %v\n%s", m, s)
	}
	s.stop(t, 2)

	s = startServe(t, d, "--url", "https://from-flag.example")
	if m := httpsLine.FindStringSubmatch(s.stderr.String()); m == nil || m[1] != "https://from-flag.example" {
		t.Errorf("want the URL from the flag: %v\n%s", m, s)
	}
	s.stop(t, 2)

	d.setConfig(t, "https_listen", `"off"`)
	s = startServe(t, d)
	if strings.Contains(s.stderr.String(), "https on") {
		t.Errorf("https_listen = \"off\" in gritsd.toml: want no HTTPS\n%s", s)
	}
	s.stop(t, 2)
}
