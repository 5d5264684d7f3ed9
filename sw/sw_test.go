package sw

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestScriptsCarryTheSettings(t *testing.T) {
	s, err := Scripts(Settings{SiteKey: "ed25519-00ff", Scope: "/app/"})
	if err != nil {
		t.Fatal(err)
	}
	w, r := string(s[LibPath]), string(s[RegisterPath])
	if !strings.HasPrefix(w, `const GRITS_CONFIG = {"siteKey":"ed25519-00ff","scope":"/app/","paths":["/"],"navigate":false,"cacheBytes":268435456,"rootCheckMs":10000,"version":"`) {
		t.Fatalf("worker does not start with its settings: %.200q", w)
	}
	if !strings.Contains(r, `scope: '/app/'`) || strings.Contains(r, "__GRITS_SCOPE__") {
		t.Fatalf("register script scope not filled in: %q", r)
	}
	if !strings.Contains(r, WorkerPath) {
		t.Fatal("register script does not name the worker's path")
	}
}

func TestScriptsRootCheck(t *testing.T) {
	s, err := Scripts(Settings{SiteKey: "ed25519-00ff", RootCheck: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(s[LibPath]), `"rootCheckMs":3000,`) {
		t.Fatalf("the worker does not carry the root check interval: %.200q", s[LibPath])
	}
	for _, d := range []time.Duration{time.Millisecond, -time.Second, 25 * time.Hour} {
		if _, err := Scripts(Settings{SiteKey: "ed25519-00ff", RootCheck: d}); err == nil {
			t.Errorf("root check every %v accepted", d)
		}
	}
}

func TestScriptsRefuseScopesThatBreakOutOfTheString(t *testing.T) {
	for _, scope := range []string{"app/", "/a'b", "/a\"b", "/a\\b", "/a\nb", "/</script>"} {
		if _, err := Scripts(Settings{SiteKey: "ed25519-00", Scope: scope}); err == nil {
			t.Errorf("scope %q accepted", scope)
		}
	}
}

func TestScriptsServeTheWorkersModules(t *testing.T) {
	s, err := Scripts(Settings{SiteKey: "ed25519-00"})
	if err != nil {
		t.Fatal(err)
	}
	w, lib := string(s[WorkerPath]), string(s[LibPath])
	for _, m := range []string{"grits.js", "blake3.js", "peers.js", "cache.js", "types.js"} {
		if len(s[ModulePath+m]) == 0 {
			t.Errorf("module %s not served", m)
		}
	}
	// The worker imports the library, the library the served modules.
	if !strings.Contains(w, "from '"+LibPath+"'") {
		t.Error("the worker does not import the served sw-lib.js")
	}
	for _, m := range []string{"grits.js", "peers.js", "cache.js", "types.js", "respond.js"} {
		if !strings.Contains(lib, "from './js/"+m+"'") {
			t.Errorf("sw-lib.js does not import the served %s", m)
		}
	}
	for _, m := range []string{"grits.js", "peers.js", "cache.js"} {
		if !strings.Contains(string(s[ModulePath+m]), "from './blake3.js'") {
			t.Errorf("%s does not import blake3.js relative to itself", m)
		}
	}
	// Every import of every served script names a served module.
	for name, body := range s {
		for _, line := range strings.Split(string(body), "\n") {
			i := strings.Index(line, " from '")
			if !strings.HasPrefix(line, "import ") || i < 0 {
				continue
			}
			spec := line[i+len(" from '"):]
			spec = spec[:strings.IndexByte(spec, '\'')]
			switch {
			case name == LibPath && strings.HasPrefix(spec, "./"):
				spec = "/grits/v1/" + spec[2:]
			case strings.HasPrefix(spec, "./"):
				spec = ModulePath + spec[2:]
			}
			if _, ok := s[spec]; !ok {
				t.Errorf("%s imports %s, which is not served", name, spec)
			}
		}
	}
}

func TestScriptsWriteTheWorkersOptions(t *testing.T) {
	s, err := Scripts(Settings{SiteKey: "ed25519-00", Paths: []string{"/static/", "/media/"}, Navigate: true, CacheBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	w := string(s[LibPath])
	line := w[:strings.IndexByte(w, '\n')]
	for _, want := range []string{`"paths":["/static/","/media/"]`, `"navigate":true`, `"cacheBytes":33554432`, `"version":"`} {
		if !strings.Contains(line, want) {
			t.Errorf("GRITS_CONFIG lacks %s: %s", want, line)
		}
	}
}

func TestScriptsRefuseBadOptions(t *testing.T) {
	for _, s := range []Settings{
		{Paths: []string{"static/"}},
		{Paths: []string{"/a'b"}},
		{Paths: []string{"/a b"}},
		{Paths: []string{"/a?b"}},
		{Paths: []string{"/</script>"}},
		{Paths: []string{"/a/../b"}},
		{Paths: make([]string, MaxPaths+1)},
		{CacheBytes: -1},
		{CacheBytes: MinCacheBytes - 1},
		{CacheBytes: MaxCacheBytes + 1},
	} {
		s.SiteKey = "ed25519-00"
		if _, err := Scripts(s); err == nil {
			t.Errorf("%+v accepted", s)
		}
	}
	if _, err := Scripts(Settings{SiteKey: "ed25519-00", Paths: []string{"/", "/x/"}, CacheBytes: MinCacheBytes}); err != nil {
		t.Errorf("good settings refused: %v", err)
	}
}

// workerVersion is the version written into a worker's config.
func workerVersion(t *testing.T, s Settings) string {
	t.Helper()
	out, err := Scripts(s)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`"version":"([0-9a-f]{32})"`).FindStringSubmatch(string(out[LibPath]))
	if m == nil {
		t.Fatalf("the worker library carries no version: %.300s", out[LibPath])
	}
	// The standalone worker names the same version: new settings change
	// its bytes too, which is what makes browsers fetch it again.
	if !strings.Contains(string(out[WorkerPath]), "version "+m[1]+"\n") {
		t.Fatalf("the worker does not name the library's version %s: %.300s", m[1], out[WorkerPath])
	}
	return m[1]
}

// TestVersionNamesScriptsAndSettings: the version is stable for the
// same scripts and settings, and changes with a setting (so the worker a
// browser runs can be told from the one the origin serves now).
func TestVersionNamesScriptsAndSettings(t *testing.T) {
	if v := Version(); len(v) != 32 || v != Version() {
		t.Fatalf("scripts version %q: want 32 hex digits, the same every time", v)
	}
	a := workerVersion(t, Settings{SiteKey: "ed25519-00"})
	if b := workerVersion(t, Settings{SiteKey: "ed25519-00"}); a != b {
		t.Fatalf("same settings, versions %s and %s", a, b)
	}
	for _, s := range []Settings{{SiteKey: "ed25519-01"}, {SiteKey: "ed25519-00", CacheBytes: 100 << 20}, {SiteKey: "ed25519-00", Navigate: true}, {SiteKey: "ed25519-00", Paths: []string{"/x/"}}} {
		if v := workerVersion(t, s); v == a {
			t.Errorf("%+v: same version as the defaults", s)
		}
	}
}

func TestMediaHosts(t *testing.T) {
	for in, want := range map[string]Host{
		"https://files.example.org":            {"https://files.example.org", "/"},
		"https://files.example.org=/system":    {"https://files.example.org", "/system"},
		"https://Files.Example.org:8443=/m/":   {"https://Files.Example.org:8443", "/m/"},
		" https://files.example.org = /system": {"https://files.example.org", "/system"},
	} {
		h, err := ParseHost(in)
		if err != nil || h != want {
			t.Errorf("ParseHost(%q) = %+v, %v; want %+v", in, h, err, want)
		}
	}
	for _, bad := range []string{"files.example.org", "http://files.example.org", "https://files.example.org/x", "https://files.example.org?q",
		"https://", "https://a'b.org", "https://files.example.org=system", "https://files.example.org=/a/../b", "https://u@files.example.org"} {
		if _, err := ParseHost(bad); err == nil {
			t.Errorf("ParseHost(%q) accepted", bad)
		}
	}
	s, err := Scripts(Settings{SiteKey: "ed25519-00", Hosts: []Host{{"https://Files.Example.org:443", "/system"}, {"https://m.example:8443", "/"}}})
	if err != nil {
		t.Fatal(err)
	}
	// As the worker compares them with URL.origin.
	if want := `"hosts":[{"origin":"https://files.example.org","prefix":"/system"},{"origin":"https://m.example:8443","prefix":"/"}]`; !strings.Contains(string(s[LibPath]), want) {
		t.Errorf("GRITS_CONFIG lacks %s: %.400s", want, s[LibPath])
	}
	if h := (Host{Origin: "https://Files.Example.org:443"}); h.HostName() != "files.example.org" {
		t.Errorf("HostName %q", h.HostName())
	}
}

// TestTreePaths: a worker without sw_paths serves the tree's top-level
// names, spelled as browsers spell URL paths; too many names fall back
// to "/", and names a URL path cannot carry safely are left out.
func TestTreePaths(t *testing.T) {
	got, ok := TreePaths([]TopName{
		{Name: "about.html"}, {Name: "css", Dir: true}, {Name: "index.html"},
		{Name: "my docs", Dir: true}, {Name: "é.txt"}, {Name: `a"b<c>`}, {Name: "q?#"}, {Name: "100%"},
		{Name: "it's"}, {Name: `back\slash`},
	})
	want := []string{"/about.html", "/css/", "/index.html", "/my%20docs/", "/%C3%A9.txt", "/a%22b%3Cc%3E", "/q%3F%23", "/100%"}
	if !ok || !slices.Equal(got, want) {
		t.Errorf("TreePaths: %q, %v; want %q", got, ok, want)
	}
	if got, ok := TreePaths(nil); !ok || got == nil || len(got) != 0 {
		t.Errorf("TreePaths of an empty tree: %#v, %v; want an empty list", got, ok)
	}
	many := make([]TopName, MaxTreePaths+1)
	for i := range many {
		many[i] = TopName{Name: fmt.Sprintf("f%d", i)}
	}
	if got, ok := TreePaths(many); ok || !slices.Equal(got, []string{"/"}) {
		t.Errorf("TreePaths of %d names: %q, %v; want [/], false", len(many), got, ok)
	}
	// Every list TreePaths makes is one Scripts takes.
	if _, err := Scripts(Settings{SiteKey: "ed25519-00", Paths: want, FromTree: true}); err != nil {
		t.Errorf("Scripts refuses the tree's paths: %v", err)
	}
	paths, _ := TreePaths(many[:MaxTreePaths])
	if _, err := Scripts(Settings{SiteKey: "ed25519-00", Paths: paths, FromTree: true}); err != nil {
		t.Errorf("Scripts refuses %d paths from the tree: %v", MaxTreePaths, err)
	}
}

// TestScriptsPathsFromTheTree: paths that follow the tree are written as
// they are, an empty list too (no tree yet: nothing from volunteers,
// not "/"), and the version changes with them, so browsers update.
func TestScriptsPathsFromTheTree(t *testing.T) {
	config := func(s Settings) string {
		t.Helper()
		sc, err := Scripts(s)
		if err != nil {
			t.Fatal(err)
		}
		w := string(sc[LibPath])
		return w[:strings.IndexByte(w, '\n')]
	}
	if c := config(Settings{SiteKey: "ed25519-00", FromTree: true}); !strings.Contains(c, `"paths":[]`) {
		t.Errorf("no paths from the tree yet: %s; want an empty list", c)
	}
	if c := config(Settings{SiteKey: "ed25519-00"}); !strings.Contains(c, `"paths":["/"]`) {
		t.Errorf("paths neither set nor from the tree: %s; want [/]", c)
	}
	a := workerVersion(t, Settings{SiteKey: "ed25519-00", FromTree: true, Paths: []string{"/css/", "/index.html"}})
	b := workerVersion(t, Settings{SiteKey: "ed25519-00", FromTree: true, Paths: []string{"/css/", "/fonts/", "/index.html"}})
	if a == b {
		t.Error("a new top-level name leaves the worker's version as it was")
	}
}
