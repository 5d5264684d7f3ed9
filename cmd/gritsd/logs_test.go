package main_test

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// secretForms are the ways a secret's bytes could show up in a log: as
// they are, hex, base64 (both alphabets), and Go's %v of a byte slice.
func secretForms(b []byte) []string {
	return []string{string(b), hex.EncodeToString(b), base64.StdEncoding.EncodeToString(b),
		base64.RawURLEncoding.EncodeToString(b), strings.Trim(fmt.Sprint(b), "[]")}
}

// keySecrets reads a PKCS#8 ed25519 key file and returns the forms of
// its seed and of its PEM body.
func keySecrets(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(raw)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Join(strings.Split(strings.TrimSpace(string(raw)), "\n")[1:2], "")
	return append(secretForms(k.(ed25519.PrivateKey).Seed()), body)
}

// TestNoSecretsInLogs runs a swarm at debug level through everything
// that handles a secret (init, token, join, serve, a ban that rotates
// the gossip key) and checks that no key and no token appears in
// anything gritsd wrote.
func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	origin, _ := newOriginWithKey(t)
	origin.importTree(t, newSource(t, []entry{{path: "index.html", data: []byte("hi\n")}}))
	var logs []string
	o := startServe(t, origin, "--gossip", "127.0.0.1:0", "--gossip-profile", "local", "--log-level", "debug")
	tok := newToken(t, origin, o.addr)
	vol := dataDir(origin.path("..", "vol"))
	r := vol.must(t, "join", tok, "--log-level", "debug")
	logs = append(logs, r.stderr)
	v := startServe(t, vol, "--gossip", "127.0.0.1:0", "--gossip-profile", "local", "--log-level", "debug")
	eventually(t, swarmWait, 50*time.Millisecond, func() error {
		st, err := origin.status(t)
		if err != nil {
			return err
		}
		if len(st.Members) != 2 {
			return fmt.Errorf("%d members, want 2", len(st.Members))
		}
		return nil
	})
	// A second join with a spent token, and a ban: the paths that log
	// refusals and key rotation.
	r = dataDir(origin.path("..", "vol2")).run(t, "join", tok, "--log-level", "debug")
	logs = append(logs, r.stderr)
	r = origin.must(t, "ban", vol.mustStatus(t).Node, "--log-level", "debug")
	logs = append(logs, r.stderr)
	eventually(t, swarmWait, 50*time.Millisecond, func() error {
		st, err := origin.status(t)
		if err != nil {
			return err
		}
		if len(st.Members) != 1 {
			return fmt.Errorf("the ban is not in force yet: %d members", len(st.Members))
		}
		return nil
	})
	o.stop(t, 15)
	v.stop(t, 15)
	logs = append(logs, o.stderr.String(), o.stdout.String(), v.stderr.String(), v.stdout.String())

	secrets := map[string][]string{"join token": {strings.TrimPrefix(tok, "grits-join-1.")}}
	secrets["origin node.key"] = keySecrets(t, origin.path("node.key"))
	secrets["site.key"] = keySecrets(t, origin.path("site.key"))
	secrets["volunteer node.key"] = keySecrets(t, vol.path("node.key"))
	sk, err := os.ReadFile(origin.path("swarm.key"))
	if err != nil {
		t.Fatal(err)
	}
	swarmKey, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sk)))
	if err != nil {
		t.Fatal(err)
	}
	secrets["swarm.key"] = secretForms(swarmKey)
	for _, f := range []string{origin.path("swarm.keys"), vol.path("swarm.keys")} {
		ring, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		secrets[f] = secretForms(ring[len(ring)-32:]) // the newest gossip key
	}
	all := strings.Join(logs, "\n")
	if !strings.Contains(all, `"level":"DEBUG"`) {
		t.Fatalf("no debug lines were logged: the test saw nothing\n%s", all)
	}
	for what, forms := range secrets {
		for _, f := range forms {
			if len(f) >= 16 && strings.Contains(all, f) {
				t.Errorf("the %s appears in the logs (as %q)", what, f)
			}
		}
	}
}
