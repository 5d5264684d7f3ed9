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
