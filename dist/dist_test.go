// Package dist holds the files to run gritsd as a service: systemd
// units, the sysctl file, example configurations and a container image
// definition. Its tests check them as far as this machine can.
package dist

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/tree"
)

var units = []string{"gritsd-origin.service", "gritsd-volunteer.service"}

// TestUnitsVerify runs systemd-analyze verify on the units (their
// ExecStart pointed at an executable that exists here): any complaint,
// even a warning about an unknown key, fails.
func TestUnitsVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian's systemd package; .ci/run installs it)")
	}
	dir := t.TempDir()
	var paths []string
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, u)
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/gritsd", "/bin/true")), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	out, err := exec.Command(sa, append([]string{"verify"}, paths...)...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestUnitsPromises: what docs/operator.md says the units do, they do.
func TestUnitsPromises(t *testing.T) {
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, want := range []string{"Type=notify", "User=gritsd", "ExecStart=/usr/local/bin/gritsd serve", "ExecReload=/bin/kill -HUP $MAINPID",
			"ProtectSystem=strict", "ReadWritePaths=/var/lib/gritsd", "Environment=GRITS_DATA=/var/lib/gritsd", "NoNewPrivileges=yes",
			"AmbientCapabilities=CAP_NET_BIND_SERVICE", "LimitNOFILE=", "Restart=on-failure"} {
			if !strings.Contains(s, "\n"+want) {
				t.Errorf("%s lacks %s", u, want)
			}
		}
	}
}

func TestSysctl(t *testing.T) {
	b, err := os.ReadFile("90-grits.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"net.core.rmem_max = 7500000", "net.core.wmem_max = 7500000"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("90-grits.conf lacks %s", want)
		}
	}
}

// TestExampleConfigs: the example settings read as gritsd.toml does,
// once the lines init or join wrote are there.
func TestExampleConfigs(t *testing.T) {
	for name, head := range map[string]string{
		"origin.toml":    "role = \"origin\"\nsite_key = \"" + tree.PublicKey{1}.String() + "\"\n",
		"volunteer.toml": "role = \"volunteer\"\nsite_key = \"" + tree.PublicKey{1}.String() + "\"\norigin_addr = \"origin.example.org:7433\"\nseeds = [\"origin.example.org:7434\"]\n",
	} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := datadir.ParseConfig(name, append([]byte(head), b...))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if cfg.HTTPSListen != ":443" || cfg.Advertise == "" {
			t.Errorf("%s: want https_listen :443 and an advertised name, got %q, %q", name, cfg.HTTPSListen, cfg.Advertise)
		}
	}
}

// TestDockerfile checks the image definition statically (docker cannot
// run here): multi-stage, the Go of go.mod, the binary this repository
// builds, a non-root user, the ports gritsd listens on, a healthcheck on
// the admin listener's /healthz.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	src := strings.ReplaceAll(string(b), "\\\n", " ")
	var lines []string
	for _, l := range strings.Split(src, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	var froms []string
	final := 0
	for i, l := range lines {
		if strings.HasPrefix(l, "FROM ") {
			froms = append(froms, l)
			final = i
		}
	}
	if len(froms) < 2 || !regexp.MustCompile(`^FROM golang:\S+ AS build$`).MatchString(froms[0]) {
		t.Fatalf("want a multi-stage build starting FROM golang:... AS build, got %q", froms)
	}
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	if goVer == nil || !strings.HasPrefix(froms[0], "FROM golang:"+string(goVer[1])) {
		t.Errorf("build stage %q: want Go %s as go.mod says", froms[0], goVer[1])
	}
	m := regexp.MustCompile(`go build .* (\./cmd/\S+)`).FindStringSubmatch(src)
	if m == nil {
		t.Fatal("no go build of a ./cmd/... package")
	}
	if _, err := os.Stat(filepath.Join("..", m[1], "main.go")); err != nil {
		t.Errorf("go build %s: %v", m[1], err)
	}
	runtime := lines[final:]
	has := func(prefix string) []string {
		var out []string
		for _, l := range runtime {
			if strings.HasPrefix(l, prefix) {
				out = append(out, l)
			}
		}
		return out
	}
	if u := has("USER "); len(u) != 1 || slices.Contains([]string{"root", "0"}, strings.Split(strings.Fields(u[0])[1], ":")[0]) {
		t.Errorf("the final stage must run as a non-root user: %q", u)
	}
	if c := has("COPY --from=build"); len(c) == 0 {
		t.Errorf("the final stage copies nothing from the build stage")
	}
	hc := has("HEALTHCHECK ")
	if len(hc) != 1 || !strings.Contains(hc[0], "http://127.0.0.1:7435/healthz") {
		t.Errorf("want one HEALTHCHECK on the admin listener's /healthz (127.0.0.1:7435): %q", hc)
	}
	var exposed []string
	for _, l := range has("EXPOSE ") {
		exposed = append(exposed, strings.Fields(l)[1:]...)
	}
	for _, p := range []string{"443/tcp", "443/udp", "7433/udp", "7434/tcp", "7434/udp"} {
		if !slices.Contains(exposed, p) {
			t.Errorf("EXPOSE lacks %s (exposed: %q)", p, exposed)
		}
	}
	if e := has("ENTRYPOINT "); len(e) != 1 || !strings.Contains(e[0], "gritsd") {
		t.Errorf("want ENTRYPOINT gritsd: %q", e)
	}
	if v := has("ENV GRITS_DATA=/data"); len(v) != 1 || len(has("VOLUME /data")) != 1 {
		t.Errorf("want the data directory in a volume at /data")
	}
}
