package sw

import (
	"strings"
	"testing"
)

func TestScriptsCarryTheSettings(t *testing.T) {
	s, err := Scripts(Settings{SiteKey: "ed25519-00ff", Scope: "/app/"})
	if err != nil {
		t.Fatal(err)
	}
	w, r := string(s[WorkerPath]), string(s[RegisterPath])
	if !strings.HasPrefix(w, `const GRITS_CONFIG = {siteKey: "ed25519-00ff", scope: "/app/"};`) {
		t.Fatalf("worker does not start with its settings: %.80q", w)
	}
	if !strings.Contains(r, `scope: '/app/'`) || strings.Contains(r, "__GRITS_SCOPE__") {
		t.Fatalf("register script scope not filled in: %q", r)
	}
	if !strings.Contains(r, WorkerPath) {
		t.Fatal("register script does not name the worker's path")
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
	w := string(s[WorkerPath])
	for _, m := range []string{"grits.js", "blake3.js"} {
		if len(s[ModulePath+m]) == 0 {
			t.Errorf("module %s not served", m)
		}
	}
	// The worker imports what is served.
	if !strings.Contains(w, "from '"+ModulePath+"grits.js'") {
		t.Error("the worker does not import the served grits.js")
	}
	if !strings.Contains(string(s[ModulePath+"grits.js"]), "from './blake3.js'") {
		t.Error("grits.js does not import blake3.js relative to itself")
	}
}
