package cli

import (
	"flag"
	"testing"

	"github.com/grits-cdn/grits/internal/datadir"
)

func lookup(t *testing.T, name string) *command {
	t.Helper()
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	t.Fatalf("no command %s", name)
	return nil
}

// TestServeFlagsHaveSettings: every flag of gritsd serve is a setting of
// gritsd.toml it overrides, and every setting's flag exists. A new flag
// without a setting fails here.
func TestServeFlagsHaveSettings(t *testing.T) {
	fs := commandFlags(lookup(t, "serve"))
	byFlag := map[string]string{}
	for _, s := range datadir.Settings() {
		if s.Flag == "" {
			continue
		}
		byFlag[s.Flag] = s.Key
		if fs.Lookup(s.Flag) == nil {
			t.Errorf("setting %s names flag --%s, which gritsd serve does not have", s.Key, s.Flag)
		}
	}
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		if f.Name == "data" {
			return // where the config file is
		}
		if _, ok := byFlag[f.Name]; !ok {
			t.Errorf("gritsd serve --%s has no setting in gritsd.toml (add a Config field and a datadir.Settings entry with Flag %q)", f.Name, f.Name)
		}
	})
	if n < 20 {
		t.Fatalf("only %d flags found: commandFlags did not see serve's flags", n)
	}
}

// TestApplyConfig: settings fill the flags the command line left out;
// a flag given wins; lists become repeated or comma-separated flags.
func TestApplyConfig(t *testing.T) {
	fs := commandFlags(lookup(t, "serve"))
	if err := fs.Parse([]string{"--url", "https://flag.example", "--trusted-proxy", "10.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	cfg := datadir.DefaultConfig()
	cfg.PublicURL = "https://config.example"
	cfg.Listen = "127.0.0.1:9"
	cfg.SWPaths = []string{"/a/", "/b/"}
	cfg.TrustedProxies = []string{"10.9.9.9"}
	cfg.ProxyPrefixes = []string{"/api/", "/ws/"}
	cfg.SWNavigate = new(false) // set, even to false: not the default
	if err := applyConfig(fs, &cfg); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"url": "https://flag.example", "listen": "127.0.0.1:9", "sw-paths": "/a/,/b/",
		"trusted-proxy": "10.0.0.1", "proxy-prefix": "/api/,/ws/", "sw-navigate": "false", "gossip": ""} {
		if got := fs.Lookup(name).Value.String(); got != want {
			t.Errorf("--%s = %q, want %q", name, got, want)
		}
	}
	eff, err := effectiveConfig(fs, cfg, map[string]bool{"url": true, "trusted-proxy": true})
	if err != nil {
		t.Fatal(err)
	}
	if eff.PublicURL != "https://flag.example" || len(eff.TrustedProxies) != 1 || eff.TrustedProxies[0] != "10.0.0.1" || eff.Listen != "127.0.0.1:9" {
		t.Errorf("effective config: %+v", eff)
	}
}

// TestNavigateDefault: sw_navigate left out serves a static site's pages
// from the worker and an app's from the origin; set, either way, it wins;
// --sw-navigate alone means true.
func TestNavigateDefault(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		toml     string
		upstream string
		want     bool
	}{
		{want: true},
		{upstream: "http://127.0.0.1:3000", want: false},
		{toml: "sw_navigate = false\n", want: false},
		{toml: "sw_navigate = true\n", upstream: "http://127.0.0.1:3000", want: true},
		{args: []string{"--sw-navigate"}, upstream: "http://127.0.0.1:3000", want: true},
		{args: []string{"--sw-navigate=false"}, toml: "sw_navigate = true\n", want: false},
	} {
		fs := commandFlags(lookup(t, "serve"))
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		cfg, err := datadir.ParseConfig("gritsd.toml", []byte(tc.toml))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Upstream = tc.upstream
		given := explicitFlags(fs)
		if err := applyConfig(fs, &cfg); err != nil {
			t.Fatal(err)
		}
		eff, err := effectiveConfig(fs, cfg, given)
		if err != nil {
			t.Fatal(err)
		}
		if got := navigateOf(eff.SWNavigate, eff.Upstream); got != tc.want {
			t.Errorf("%v, %q, upstream %q: navigate %v, want %v", tc.args, tc.toml, tc.upstream, got, tc.want)
		}
		if got := navigateOf(fs.Lookup("sw-navigate").Value.(*optBool).v, tc.upstream); got != tc.want {
			t.Errorf("%v, %q, upstream %q: flags say navigate %v, want %v", tc.args, tc.toml, tc.upstream, got, tc.want)
		}
	}
}
