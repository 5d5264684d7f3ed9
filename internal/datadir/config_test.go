package datadir

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/grits-cdn/grits/tree"
)

// TestSettingsCoverConfig: every field of Config is documented in
// Settings and every setting is a field, and each documented default is
// a value of the field's type. A new setting without documentation fails
// here.
func TestSettingsCoverConfig(t *testing.T) {
	keys := ConfigKeys()
	var documented []string
	for _, s := range Settings() {
		if slices.Contains(documented, s.Key) {
			t.Errorf("setting %s is documented twice", s.Key)
		}
		documented = append(documented, s.Key)
		if !slices.Contains(keys, s.Key) {
			t.Errorf("setting %s has no field in Config", s.Key)
			continue
		}
		if s.Doc == "" || s.Group == "" || s.Default == "" {
			t.Errorf("setting %s: want a doc, a group and a default", s.Key)
		}
		var raw map[string]any
		if _, err := toml.Decode(s.Key+" = "+s.Default, &raw); err != nil {
			t.Errorf("setting %s: default %s is not a TOML value: %v", s.Key, s.Default, err)
			continue
		}
		var c Config
		if err := setTOML(configFields(&c)[s.Key], raw[s.Key]); err != nil {
			t.Errorf("setting %s: default %s: %v", s.Key, s.Default, err)
		}
	}
	for _, k := range keys {
		if !slices.Contains(documented, k) {
			t.Errorf("Config field with key %s is not documented in Settings (settings.go)", k)
		}
	}
}

// sample is a config with every setting away from its default.
func sample() Config {
	c := DefaultConfig()
	c.Role = RoleStorage
	c.SiteKey = tree.PublicKey{1, 2, 3}
	c.RootTTL = Duration{36 * time.Hour}
	c.RetainRoots = 3
	c.CacheQuota = 1 << 20
	c.ChunkSize = 64 << 10
	c.Listen, c.Gossip, c.Advertise, c.PublicURL, c.HTTPSListen, c.AdminListen = ":1", ":2", "n.example", "https://n.example", ":443", "127.0.0.1:9"
	c.OriginAddr, c.Seeds, c.GossipProfile, c.Replication = "o.example:7433", []string{"o.example:7434", "b:1"}, "wan", 3
	c.Pins, c.CertTTL, c.ForgetMembersAfter = []string{"/media", "/docs"}, Duration{time.Hour}, Duration{24 * time.Hour}
	c.WarmMaxBytes, c.WarmRateBytes, c.PinRateBytes = -1, 5, 6
	c.TLSCert, c.TLSKey, c.ACMEEmail = "/c.pem", "/k.pem", "a@b"
	c.RateLimit, c.TrustedProxies, c.HTTP2 = 12.5, []string{"10.0.0.0/8"}, HTTP2Go
	c.WatchQuiet = Duration{3 * time.Second}
	c.HTTPWriteTimeout, c.HTTPBodyTimeout, c.HTTPBodyMinRate = Duration{time.Minute}, Duration{2 * time.Minute}, 100
	c.Grits1RateLimit = 50
	c.SWScope, c.SWPaths, c.SWNavigate, c.SWCacheMB, c.SWRootCheck = "/app/", []string{"/static/", "/media/"}, new(false), 64, Duration{30 * time.Second}
	c.MediaHosts = []string{"https://files.example.org=/system"}
	c.LogLevel, c.LogFormat = "debug", "json"
	c.Mount, c.MountAt, c.MountQuiet, c.MountOwner, c.Publish, c.NoReadDirPlus = "/mnt/site", "/system", Duration{2 * time.Second}, "www-data", "all", true
	c.StoreMax, c.OffloadReplicas = 1<<30, 3
	c.AuditInterval, c.AuditTimeout, c.OffloadGrace = Duration{10 * time.Second}, Duration{2 * time.Second}, Duration{time.Hour}
	return c
}

func TestConfigRoundTrip(t *testing.T) {
	for _, c := range []Config{DefaultConfig(), sample()} {
		b, err := FormatConfig(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseConfig("x", b)
		if err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		if !sameConfig(&got, &c) {
			t.Errorf("round trip changed the config:\n got %+v\nwant %+v\n%s", got, c, b)
		}
		// Every field set away from its default is written as a setting.
		if c.Role == RoleStorage {
			for _, k := range ConfigKeys() {
				if k != "version" && KeyLine(b, k) == 0 && !slices.Contains([]string{"acme_domains", "upstream", "upstream_host", "inject_sw", "inject_sw_tree", "proxy_prefixes", "watch"}, k) {
					t.Errorf("%s is not set in the written file", k)
				}
			}
		}
	}
}

// TestCommentedDefaultsParse: uncommenting every "# key = default" line
// of a new file gives a file that reads (the defaults shown are values,
// not prose).
func TestCommentedDefaultsParse(t *testing.T) {
	b, err := FormatConfig(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^# ([a-z0-9_]+ = )`)
	n := len(re.FindAll(b, -1))
	if n < len(Settings())-2 {
		t.Fatalf("only %d commented settings in\n%s", n, b)
	}
	un := re.ReplaceAll(b, []byte("$1"))
	if _, err := ParseConfig("uncommented", un); err != nil {
		t.Fatalf("uncommented defaults: %v\n%s", err, un)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name, src string
		line      int
		key, want string
	}{
		{"unknown key", "version = 1\n\nlisen = \":1\"\n", 3, "lisen", "unknown setting; did you mean listen?"},
		{"flag name", "tls-cert = \"/x\"\n", 1, "tls-cert", "did you mean tls_cert?"},
		{"wrong type", "role = \"origin\"\nretain_roots = \"ten\"\n", 2, "retain_roots", "want an integer"},
		{"list of strings", "seeds = \"a:1\"\n", 1, "seeds", "want a list of strings"},
		{"bad duration", "root_ttl = \"a week\"\n", 1, "root_ttl", "invalid duration"},
		{"invalid value", "# comment\nroot_ttl = \"30s\"\n", 2, "root_ttl", "at least 1m"},
		{"too short to forget", "forget_members_after = \"30s\"\n", 1, "forget_members_after", "at least 1m"},
		{"validated pair", "\ntls_cert = \"/c\"\n", 0, "tls_key", "go together"},
		{"origin only", "role = \"volunteer\"\n\n\nupstream = \"http://x\"\n", 4, "upstream", "only an origin"},
		{"table", "[swarm]\nlisten = \":1\"\n", 1, "swarm", "no tables"},
		{"syntax", "listen = \":1\"\nseeds = [\"a\",\n", 2, "", "expected"},
		{"duplicate", "listen = \":1\"\nlisten = \":2\"\n", 2, "", "already been defined"},
		{"out of range", "chunk_size = -1\n", 1, "chunk_size", "out of range"},
		{"unknown value", "http2 = \"h2o\"\n", 1, "http2", "want \"grits\" or \"go\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("/d/gritsd.toml", []byte(tt.src))
			if err == nil {
				t.Fatalf("no error for\n%s", tt.src)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("%v: not a *ConfigError", err)
			}
			if ce.Line != tt.line || ce.Key != tt.key || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got line %d key %q: %v\nwant line %d key %q and %q", ce.Line, ce.Key, err, tt.line, tt.key, tt.want)
			}
			prefix := "/d/gritsd.toml: "
			if tt.line > 0 {
				prefix = "/d/gritsd.toml:" + strconv.Itoa(tt.line) + ": "
			}
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("%q: want it to start with %q", err, prefix)
			}
		})
	}
}

// TestMigrateConfigJSON: a data directory made before gritsd.toml opens
// with the same settings, now in gritsd.toml, and config.json kept as a
// backup.
func TestMigrateConfigJSON(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "data")
	d, err := Init(ctx, path, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	want := d.Config
	want.Seeds, want.GossipProfile, want.Advertise, want.WarmMaxBytes = []string{"a:1"}, "wan", "o.example", -1
	// config.json as the previous gritsd wrote it.
	legacy, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(path, ConfigFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "config.json"), legacy, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		d, err := Open(ctx, path, nil)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		d.Close()
		if !sameConfig(&d.Config, &want) {
			t.Errorf("open %d: config %+v, want %+v", i, d.Config, want)
		}
		if _, err := os.Stat(filepath.Join(path, "config.json")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("open %d: config.json still there (%v)", i, err)
		}
		bak, err := os.ReadFile(filepath.Join(path, "config.json.bak"))
		if err != nil || string(bak) != string(legacy) {
			t.Errorf("open %d: config.json.bak: %v, want the old file", i, err)
		}
		src, err := os.ReadFile(filepath.Join(path, ConfigFile))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(src), "gossip_profile = \"wan\"\n") || !strings.Contains(string(src), "# Gossip timers") {
			t.Errorf("gritsd.toml lacks the setting or its comment:\n%s", src)
		}
	}

	// A migration that stopped between writing gritsd.toml and moving
	// config.json: gritsd.toml wins and config.json is moved now.
	if err := os.WriteFile(filepath.Join(path, "config.json"), []byte(`{"version":1,"role":"volunteer"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err = Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if d.Config.Role != RoleOrigin {
		t.Errorf("role %s: the stale config.json won", d.Config.Role)
	}
	if _, err := os.Stat(filepath.Join(path, "config.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("config.json still there")
	}
}

// TestSecretsRefused: a key others can read stops every command that
// opens the directory, with a message that names the file and the fix.
func TestSecretsRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "data")
	d, err := Init(ctx, path, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if err := os.WriteFile(filepath.Join(path, "swarm.keys"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path, "acme"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		mode os.FileMode
		fix  string
	}{
		{"node.key", 0o644, "chmod 600"}, {"site.key", 0o640, "chmod 600"}, {"swarm.key", 0o604, "chmod 600"},
		{"swarm.keys", 0o660, "chmod 600"}, {"acme", 0o755, "chmod 700"},
	} {
		p := filepath.Join(path, tt.name)
		old, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tt.mode); err != nil {
			t.Fatal(err)
		}
		_, err = Open(ctx, path, nil)
		if !errors.Is(err, ErrSecretExposed) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tt.fix+" "+p) {
			t.Errorf("%s mode %04o: open: %v", tt.name, tt.mode, err)
		}
		if err := os.Chmod(p, old.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	d, err = Open(ctx, path, nil)
	if err != nil {
		t.Fatalf("after chmod back: %v", err)
	}
	d.Close()
}

// TestSaveConfigKeepsEdits: join rewrites a few settings; what a person
// wrote in the file stays.
func TestSaveConfigKeepsEdits(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "data")
	d, err := Init(ctx, path, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	p := filepath.Join(path, ConfigFile)
	src, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(src), "# cache_quota_bytes = 10737418240", "# mine: the small disk\ncache_quota_bytes = 1000000", 1)
	edited += "\nseeds = [\n  \"old:1\",\n]\n"
	if err := os.WriteFile(p, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if d.Config, err = LoadConfig(path, nil); err != nil {
		t.Fatal(err)
	}
	d.Config.Role, d.Config.SiteKey, d.Config.Seeds, d.Config.OriginAddr = RoleStorage, tree.PublicKey{9}, []string{"a:1", "b:2"}, "o:7433"
	if err := d.SaveConfig(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# mine: the small disk\ncache_quota_bytes = 1000000\n", "role = \"storage\"\n", "seeds = [\"a:1\", \"b:2\"]\n", "origin_addr = \"o:7433\"\n"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("want %q in\n%s", want, got)
		}
	}
	if strings.Contains(string(got), "old:1") {
		t.Errorf("the old seeds list is still there:\n%s", got)
	}
	c, err := LoadConfig(path, nil)
	if err != nil || !sameConfig(&c, &d.Config) {
		t.Errorf("reads back as %+v, %v; want %+v", c, err, d.Config)
	}
	if _, err := os.Stat(p + ".bak"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a backup was written although the edit kept the file")
	}
}

// TestConfigSetText: the flag form of every kind of setting.
func TestConfigSetText(t *testing.T) {
	var c Config
	for key, text := range map[string]string{"listen": ":9", "root_ttl": "2h", "chunk_size": "65536", "rate_limit": "1.5",
		"sw_navigate": "true", "sw_paths": "/a/, /b/", "site_key": tree.PublicKey{7}.String()} {
		if err := c.Set(key, text); err != nil {
			t.Fatalf("%s=%s: %v", key, text, err)
		}
		got := strings.Join(c.Text(key), ",")
		if want := strings.ReplaceAll(text, " ", ""); got != want {
			t.Errorf("%s: text %q, want %q", key, got, want)
		}
	}
	if !reflect.DeepEqual(c.SWPaths, []string{"/a/", "/b/"}) {
		t.Errorf("sw_paths %q", c.SWPaths)
	}
	for key, text := range map[string]string{"chunk_size": "-1", "root_ttl": "soon", "sw_navigate": "maybe", "nope": "1"} {
		if err := c.Set(key, text); err == nil {
			t.Errorf("%s=%s: no error", key, text)
		}
	}
}
