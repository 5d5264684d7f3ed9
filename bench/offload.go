package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/grits-cdn/grits/gateway"
	"github.com/grits-cdn/grits/offload"
	"github.com/grits-cdn/grits/transport"
	"github.com/grits-cdn/grits/tree"
)

// The offload suite runs an origin with store_max at 30% of its site and
// two storage nodes, all gritsd serve processes on loopback, and
// measures, once the origin has offloaded:
//
//   - time to first byte over HTTP/3 of a file whose blocks the origin
//     let go (fetched back from a storage node on the way) against a
//     file still on its disk, in the same run;
//   - the origin's disk (block files, tree nodes included) against the
//     site's bytes;
//   - audit bandwidth per storage node per hour at the default rate (one
//     audit a minute), from the bytes per audit measured at a fast rate,
//     against the library it protects.
const (
	offloadFiles     = 48
	offloadFilesQ    = 24
	offloadFileSize  = 1 << 20 // 4 chunks of 256 KiB
	offloadBudget    = 0.3
	offloadFastAudit = 200 * time.Millisecond
)

func offloadSuite(ctx context.Context, work string, quick bool) ([]Result, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	bin, err := gritsdBinary(ctx, work)
	if err != nil {
		return nil, err
	}
	n := offloadFiles
	if quick {
		n = offloadFilesQ
	}
	files := map[string][]byte{}
	var site int64
	for i := range n {
		files[fmt.Sprintf("media/%03d.bin", i)] = randomBytes(byte(100+i), offloadFileSize)
		site += offloadFileSize
	}
	dir := filepath.Join(work, "offload")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := &benchSite{bin: bin, dir: dir}
	defer s.Close()
	fmt.Fprintln(os.Stderr, "offload: an origin with store_max at 30% of its site and two storage nodes")
	if err := s.startOffloadOrigin(ctx, files, int64(float64(site)*offloadBudget)); err != nil {
		return nil, err
	}
	for i := range 2 {
		if err := s.addNode(ctx, fmt.Sprint("storage", i), "storage"); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	st, err := s.waitOffloaded(ctx)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "offload: %d of %d bytes offloaded after %v\n", st.OffloadedBytes, st.ContentBytes, time.Since(start).Round(time.Millisecond))

	var out []Result
	disk, err := dirBytes(filepath.Join(s.origin.data, "blocks"))
	if err != nil {
		return nil, err
	}
	out = append(out, Result{Suite: "offload", Case: "origin disk after offload", Server: "origin", Unit: "MB", Value: float64(disk) / 1e6,
		Baseline: "site", BaselineValue: float64(site) / 1e6, Ratio: float64(disk) / float64(site),
		Note: fmt.Sprintf("store_max %.0f%% of the site; block files, tree nodes included", offloadBudget*100)})

	ttfb, err := s.offloadTTFB(ctx, files)
	if err != nil {
		return nil, err
	}
	out = append(out, ttfb)

	audit, err := s.auditBandwidth(ctx, st.ContentBytes)
	if err != nil {
		return nil, err
	}
	return append(out, audit), nil
}

// startOffloadOrigin makes the origin with the offload settings, imports
// files and serves it with a certificate from its development CA.
func (s *benchSite) startOffloadOrigin(ctx context.Context, files map[string][]byte, storeMax int64) error {
	src := filepath.Join(s.dir, "src")
	for p, b := range files {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(src, p), b, 0o644); err != nil {
			return err
		}
	}
	odata := filepath.Join(s.dir, "origin")
	if out, err := exec.CommandContext(ctx, s.bin, "--data", odata, "init", "--origin").CombinedOutput(); err != nil {
		return fmt.Errorf("gritsd init: %v: %s", err, out)
	}
	if err := setTOML(filepath.Join(odata, "gritsd.toml"), map[string]string{"store_max": fmt.Sprint(storeMax), "audit_interval": fmt.Sprintf("%q", offloadFastAudit.String())}); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, s.bin, "--data", odata, "import", src).CombinedOutput(); err != nil {
		return fmt.Errorf("gritsd import: %v: %s", err, out)
	}
	ca, err := gateway.LoadDevCA(odata)
	if err != nil {
		return fmt.Errorf("dev CA: %w", err)
	}
	if s.leaf, err = ca.Issue([]string{"127.0.0.1"}, 6*time.Hour); err != nil {
		return err
	}
	s.pool = x509.NewCertPool()
	s.pool.AddCert(ca.Cert)
	s.certPath, s.keyPath = filepath.Join(s.dir, "tls.pem"), filepath.Join(s.dir, "tls.key")
	if err := writePair(s.certPath, s.keyPath, s.leaf); err != nil {
		return err
	}
	s.origin, err = s.start(ctx, "origin", odata, false, 0)
	return err
}

// addNode enrols a node of role with the origin and starts it.
func (s *benchSite) addNode(ctx context.Context, name, role string) error {
	tok, err := exec.CommandContext(ctx, s.bin, "--data", s.origin.data, "token", "--role", role, "--origin-addr", s.origin.proto).Output()
	if err != nil {
		return fmt.Errorf("gritsd token: %w", err)
	}
	data := filepath.Join(s.dir, name)
	if out, err := exec.CommandContext(ctx, s.bin, "--data", data, "join", strings.TrimSpace(string(tok))).CombinedOutput(); err != nil {
		return fmt.Errorf("gritsd join: %v: %s", err, out)
	}
	n, err := s.start(ctx, name, data, false, 0)
	if err != nil {
		return err
	}
	s.vols = append(s.vols, n)
	return nil
}

// setTOML sets key = value (TOML) in a gritsd.toml, replacing the line
// that sets it or its commented-out default.
func setTOML(path string, kv map[string]string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out := string(b)
	for k, v := range kv {
		re := regexp.MustCompile(`(?m)^(# )?` + regexp.QuoteMeta(k) + ` = .*$`)
		if re.MatchString(out) {
			out = re.ReplaceAllLiteralString(out, k+" = "+v)
		} else {
			out += k + " = " + v + "\n"
		}
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

// offloadStats asks the origin's daemon.
func (s *benchSite) offloadStats(ctx context.Context) (offload.Stats, error) {
	out, err := exec.CommandContext(ctx, s.bin, "--data", s.origin.data, "status", "--json").Output()
	if err != nil {
		return offload.Stats{}, fmt.Errorf("gritsd status: %w", err)
	}
	var st struct {
		Offload *offload.Stats `json:"offload"`
	}
	if err := json.Unmarshal(out, &st); err != nil || st.Offload == nil {
		return offload.Stats{}, fmt.Errorf("gritsd status --json: no offload part (%v)", err)
	}
	return *st.Offload, nil
}

func (s *benchSite) waitOffloaded(ctx context.Context) (offload.Stats, error) {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		st, err := s.offloadStats(ctx)
		verified := 0
		for _, n := range st.Nodes {
			if n.State == "verified" {
				verified++
			}
		}
		if err == nil && verified == 2 && st.OffloadedBytes > 0 && st.StoreBytes <= st.StoreMax && st.Warning == "" {
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("the origin did not offload within 3 minutes (%v): %+v", err, st)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// offloadTTFB measures the first byte of files the origin holds against
// files it let go, each offloaded file read once (reading brings it
// back).
func (s *benchSite) offloadTTFB(ctx context.Context, files map[string][]byte) (Result, error) {
	local, gone, err := s.splitByResidence(ctx, files)
	if err != nil {
		return Result{}, err
	}
	k := min(len(local), len(gone), 9)
	if k < 3 {
		return Result{}, fmt.Errorf("too few files to compare: %d local, %d offloaded", len(local), len(gone))
	}
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: s.pool}}
	defer tr.Close()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	base := "https://" + s.origin.https
	if _, err := firstByte(ctx, hc, base+"/"+local[0]); err != nil { // the connection, warm
		return Result{}, err
	}
	var tl, to []time.Duration
	for i := range k {
		d, err := firstByte(ctx, hc, base+"/"+local[i])
		if err != nil {
			return Result{}, err
		}
		tl = append(tl, d)
		if d, err = firstByte(ctx, hc, base+"/"+gone[i]); err != nil {
			return Result{}, err
		}
		to = append(to, d)
	}
	ml, mo := medianDuration(tl), medianDuration(to)
	return Result{Suite: "offload", Case: "time to first byte, HTTP/3", Server: "origin", Protocol: "h3", Unit: "ms",
		Value: float64(mo) / 1e6, Baseline: "a file on the origin's disk", BaselineValue: float64(ml) / 1e6, Ratio: float64(mo) / float64(ml),
		Note: fmt.Sprintf("medians of %d files each; the offloaded file's first block comes back from a storage node", k)}, nil
}

func medianDuration(ds []time.Duration) time.Duration {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// firstByte GETs u and returns the time to the first byte of the body,
// reading the rest.
func firstByte(ctx context.Context, hc *http.Client, u string) (time.Duration, error) {
	var first time.Time
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotFirstResponseByte: func() { first = time.Now() },
	}), http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var b [1]byte
	if _, err := io.ReadFull(resp.Body, b[:]); err != nil || resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s: %v", u, resp.Status, err)
	}
	if first.IsZero() {
		first = time.Now()
	}
	d := first.Sub(start)
	_, err = io.Copy(io.Discard, resp.Body)
	return d, err
}

// splitByResidence sorts files by whether the origin holds their first
// chunk, asking the origin for each file's node over grits/1.
func (s *benchSite) splitByResidence(ctx context.Context, files map[string][]byte) (local, gone []string, err error) {
	key, err := s.siteKey(ctx)
	if err != nil {
		return nil, nil, err
	}
	c, err := transport.NewClient(transport.ClientConfig{SiteKey: key})
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	var paths []string
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		r, err := c.Lookup(ctx, s.origin.proto, nil, tree.MustParsePath(p), 0)
		if err != nil {
			return nil, nil, err
		}
		res, err := tree.Verify(r.Root.Tree, tree.MustParsePath(p), r.Proof)
		if err != nil {
			return nil, nil, err
		}
		h := res.Node.(*tree.FileNode).Hashes[0].Hex()
		here := false
		for _, d := range []string{"pinned", "cached"} {
			if _, err := os.Stat(filepath.Join(s.origin.data, "blocks", d, h[:2], h)); err == nil {
				here = true
			}
		}
		if here {
			local = append(local, p)
		} else {
			gone = append(gone, p)
		}
	}
	return local, gone, nil
}

// auditBandwidth measures bytes per routine audit at a fast rate and
// scales it to the default rate.
func (s *benchSite) auditBandwidth(ctx context.Context, library int64) (Result, error) {
	before, err := s.offloadStats(ctx)
	if err != nil {
		return Result{}, err
	}
	select {
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-time.After(10 * time.Second):
	}
	after, err := s.offloadStats(ctx)
	if err != nil {
		return Result{}, err
	}
	var bytes, audits int64
	for _, a := range after.Nodes {
		for _, b := range before.Nodes {
			if a.ID == b.ID {
				bytes += a.AuditBytes - b.AuditBytes
				audits += int64(a.Passed - b.Passed)
			}
		}
	}
	if audits == 0 {
		return Result{}, fmt.Errorf("no audit passed in 10 s at one every %v", offloadFastAudit)
	}
	perHour := float64(bytes) / float64(audits) * float64(time.Hour/offload.DefaultAuditInterval)
	return Result{Suite: "offload", Case: "audit bandwidth per storage node per hour", Server: "origin", Protocol: "grits/1", Unit: "MB",
		Value: perHour / 1e6, Baseline: "library", BaselineValue: float64(library) / 1e6, Ratio: perHour / float64(library),
		Note: fmt.Sprintf("%d audits measured at one per %v, %d B each, scaled to one per %v (payload bytes)", audits, offloadFastAudit, bytes/audits, offload.DefaultAuditInterval)}, nil
}

func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		fi, err := de.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	return n, err
}
