package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// bashComplete loads gritsd's bash completion and returns the words it
// offers for the command line words (the last one being completed).
func bashComplete(t *testing.T, script string, words ...string) []string {
	t.Helper()
	var quoted []string
	for _, w := range words {
		quoted = append(quoted, "'"+strings.ReplaceAll(w, "'", `'\''`)+"'")
	}
	prog := "source " + script + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" +
		itoa(len(words)-1) + "\n_gritsd\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
	cmd := exec.Command("bash", "--norc", "--noprofile", "-c", prog)
	cmd.Dir = t.TempDir() // file completions see an empty directory
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash completion of %q: %v\n%s", words, err, out)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			got = append(got, l)
		}
	}
	return got
}

// TestCompletionBash runs the completion function in bash, as a shell
// does when the user presses Tab.
func TestCompletionBash(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	r := run(t, "completion", "bash")
	if r.code != 0 {
		t.Fatalf("completion bash\n%s", r)
	}
	script := filepath.Join(t.TempDir(), "gritsd.bash")
	if err := os.WriteFile(script, []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		words []string
		want  []string
	}{
		{[]string{"gritsd", "se"}, []string{"serve"}},
		{[]string{"gritsd", "--data", "/d", "im"}, []string{"import"}},
		{[]string{"gritsd", "serve", "--gos"}, []string{"--gossip", "--gossip-profile"}},
		{[]string{"gritsd", "serve", "--log-level", "d"}, []string{"debug"}},
		{[]string{"gritsd", "serve", "--http2", ""}, []string{"grits", "go"}},
		{[]string{"gritsd", "token", "--role", "s"}, []string{"storage"}},
		{[]string{"gritsd", "config", ""}, []string{"check"}},
		{[]string{"gritsd", "completion", "z"}, []string{"zsh"}},
		{[]string{"gritsd", "gc", "--d"}, []string{"--data", "--dry-run"}},
		{[]string{"gritsd", "get", "-"}, nil}, // checked below: -o among them
	}
	for _, tt := range tests {
		got := bashComplete(t, script, tt.words...)
		if tt.want == nil {
			if !slices.Contains(got, "-o") || !slices.Contains(got, "--peer") {
				t.Errorf("%q: got %q, want -o and --peer among them", tt.words, got)
			}
			continue
		}
		slices.Sort(got)
		slices.Sort(tt.want)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%q: got %q, want %q", tt.words, got, tt.want)
		}
	}
	// Every command of gritsd help completes.
	help := run(t, "help").stdout
	all := bashComplete(t, script, "gritsd", "")
	for _, m := range regexp.MustCompile(`(?m)^  (\S+)`).FindAllStringSubmatch(help, -1) {
		if !slices.Contains(all, m[1]) {
			t.Errorf("command %s from gritsd help does not complete (got %q)", m[1], all)
		}
	}
}

// TestCompletionZsh checks the zsh script: it parses, and compinit loads
// it (zsh's completion needs a terminal to run further).
func TestCompletionZsh(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("zsh"); err != nil {
		t.Skip("no zsh (.ci/run installs it)")
	}
	r := run(t, "completion", "zsh")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "#compdef gritsd\n") {
		t.Fatalf("completion zsh\n%s", r)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "_gritsd")
	if err := os.WriteFile(script, []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("zsh", "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	prog := "fpath=(" + dir + " $fpath); autoload -U compinit; compinit -u -d " + filepath.Join(dir, "zcompdump") +
		"; print -r -- ${_comps[gritsd]}"
	cmd := exec.Command("zsh", "-f", "-c", prog)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "_gritsd" {
		t.Fatalf("compinit did not register _gritsd for gritsd: %v\n%s", err, out)
	}
	for _, c := range []string{"serve", "import", "config", "version"} {
		if !strings.Contains(r.stdout, "\t\t'"+c+":") {
			t.Errorf("zsh completion lacks command %s", c)
		}
	}
}

// TestVersion: gritsd version names the module version, the commit the
// test binary was built from and the Go that built it.
func TestVersion(t *testing.T) {
	t.Parallel()
	r := run(t, "version")
	if r.code != 0 {
		t.Fatalf("version\n%s", r)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "gritsd ") || !strings.HasPrefix(lines[1], "commit ") ||
		lines[2] != "go     "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH {
		t.Fatalf("want gritsd VERSION, commit ..., go %s\n%s", runtime.Version(), r)
	}
	// What the toolchain recorded, read independently: the binary must
	// say the same (GOFLAGS=-buildvcs=false, or a build outside a
	// checkout, records no commit).
	m, err := exec.Command("go", "version", "-m", gritsdBin).Output()
	if err != nil {
		t.Fatal(err)
	}
	rev := regexp.MustCompile(`(?m)^\s+build\s+vcs\.revision=(\S+)$`).FindSubmatch(m)
	if rev == nil {
		if lines[1] != "commit unknown (built without version control information)" {
			t.Errorf("no commit recorded in the binary, yet version says %q", lines[1])
		}
		return
	}
	if !strings.HasPrefix(lines[1], "commit "+string(rev[1])) {
		t.Errorf("commit line %q, want the recorded revision %s", lines[1], rev[1])
	}
}
