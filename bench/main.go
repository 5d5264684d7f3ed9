// Command bench runs grits' benchmark suite on this machine and writes
// a table (stdout), JSON and an SVG chart:
//
//	go run ./bench [-out DIR] [-quick] [-suite NAME[,NAME...]|all] [-gritsd BIN] [-browser-cases hash,throughput,pages]
//
// Browser (browser.go): the service worker in headless Chromium, beside
// baselines from the same run: BLAKE3 against WebCrypto SHA-256, page
// loads through the worker against the origin over delayed links
// (relay.go), and verified against unverified block throughput.
//
// Protocol (protocol.go): grits/1 from a Go client against gritsd serve
// processes: round trips per operation over a delayed link, one peer
// against a raw quic-go stream, one file from 1, 2 and 4 peers.
//
// Offload (offload.go): an origin keeping 30% of its site with two
// storage nodes: time to first byte of an offloaded file against a local
// one, the origin's disk against the site, audit bandwidth per storage
// node per hour.
//
// Fuse (fuse.go): gritsd mount against the disk under it: sequential
// write and read, tar x, ls -lR and rm -rf of a source tree, and the
// first read of a large file on a volunteer's mount against gritsd get.
//
// Gateway: block GETs over HTTP/2 from gritsd and from nginx serving the
// same bytes as files from disk, with the same load generator (h2load,
// from Debian's nghttp2-client) in the same run, in turn, three rounds,
// each server reported at its median round; and over HTTP/3 from
// gritsd with a Go load client (nginx from Debian has no HTTP/3). Every
// figure is reported beside its baseline from the same run, because
// absolute numbers on shared machines are noise.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one measured row.
type Result struct {
	Suite    string  `json:"suite"`
	Case     string  `json:"case"`
	Server   string  `json:"server"`
	Protocol string  `json:"protocol"`
	Requests int     `json:"requests"`
	ReqPerS  float64 `json:"req_per_s"`
	MBPerS   float64 `json:"mb_per_s"`
	// Ratio is ReqPerS over the baseline row's (nginx, HTTP/2, same case);
	// for the browser suite, Value over BaselineValue.
	Ratio float64 `json:"ratio_vs_baseline"`
	// Browser suite (browser.go): Value in Unit beside the named
	// Baseline's value from the same run; Millis for load times.
	Unit          string  `json:"unit,omitempty"`
	Value         float64 `json:"value,omitempty"`
	Millis        float64 `json:"ms,omitempty"`
	Baseline      string  `json:"baseline,omitempty"`
	BaselineValue float64 `json:"baseline_value,omitempty"`
	Note          string  `json:"note,omitempty"`
}

// suite is one group of benchmarks. Each prints its own table: the
// figures of different suites are not comparable with each other, only
// with the baselines inside the same suite.
type suite struct {
	name  string
	run   func(ctx context.Context, work string, quick bool) ([]Result, error)
	print func(w io.Writer, rs []Result)
}

// suites in the order -suite all runs them. A new suite adds one line.
var suites = []suite{
	{"gateway", gatewaySuite, printGateway},
	{"browser", browserSuite, printBrowser},
	{"protocol", protocolSuite, ratioTable("protocol", "a Go client against gritsd serve processes")},
	{"offload", offloadSuite, ratioTable("offload", "an origin with store_max at 30% of its site and two storage nodes")},
	{"fuse", fuseSuite, ratioTable("fuse", "gritsd mount against the disk under it; for times the ratio is the baseline's time over ours")},
}

func main() {
	out := flag.String("out", "bench-results", "directory for results.json and chart.svg")
	quick := flag.Bool("quick", false, "fewer requests (a smoke run)")
	bin := flag.String("gritsd", "", "measure this gritsd binary (every suite) instead of one built from this tree: another commit's, for a before/after in one session")
	cases := flag.String("browser-cases", "hash,throughput,pages", "the browser suite's parts to run: hash (BLAKE3 in the page), throughput (50 MiB through the worker), pages (page loads over delayed links)")
	var names []string
	for _, s := range suites {
		names = append(names, s.name)
	}
	which := flag.String("suite", "all", "comma-separated suites to run: "+strings.Join(names, ", ")+", or all")
	flag.Parse()
	var chosen []suite
	for _, name := range strings.Split(*which, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(suites, func(s suite) bool { return s.name == name })
		switch {
		case name == "all":
			chosen = suites
		case i < 0:
			fmt.Fprintf(os.Stderr, "bench: -suite %q: want %s or all\n", name, strings.Join(names, ", "))
			os.Exit(2)
		default:
			chosen = append(chosen, suites[i])
		}
	}
	for _, c := range strings.Split(*cases, ",") {
		switch c = strings.TrimSpace(c); c {
		case "hash", "throughput", "pages":
			browserParts[c] = true
		default:
			fmt.Fprintf(os.Stderr, "bench: -browser-cases %q: want hash, throughput or pages\n", c)
			os.Exit(2)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *out, *quick, *bin, chosen); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// browserParts are the browser suite's parts to run (-browser-cases),
// set once by main before any suite runs.
var browserParts = map[string]bool{}

func run(ctx context.Context, out string, quick bool, bin string, chosen []suite) error {
	work, err := os.MkdirTemp("", "grits-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if bin != "" {
		// The suites that find work/gritsd use it instead of building one.
		b, err := os.ReadFile(bin)
		if err != nil {
			return fmt.Errorf("-gritsd: %w", err)
		}
		if err := os.WriteFile(filepath.Join(work, "gritsd"), b, 0o755); err != nil {
			return err
		}
	}
	// nginx's workers run as an unprivileged user: they must read it.
	if err := os.Chmod(work, 0o755); err != nil {
		return err
	}
	var all, gateway []Result
	for _, s := range chosen {
		rs, err := s.run(ctx, work, quick)
		if err != nil {
			return fmt.Errorf("%s suite: %w", s.name, err)
		}
		s.print(os.Stdout, rs)
		all = append(all, rs...)
		if s.name == "gateway" {
			gateway = rs
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(struct {
		Time    time.Time `json:"time"`
		Results []Result  `json:"results"`
	}{time.Now().UTC(), all}, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "chart.svg"), chart(gateway), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nwrote %s and %s\n", filepath.Join(out, "results.json"), filepath.Join(out, "chart.svg"))
	return nil
}

// printGateway prints the gateway suite's table.
func printGateway(w io.Writer, results []Result) {
	if len(results) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "suite\tcase\tserver\tprotocol\trequests\treq/s\tMB/s\tvs nginx h2\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%.0f\t%.1f\t%.2fx\t\n", r.Suite, r.Case, r.Server, r.Protocol, r.Requests, r.ReqPerS, r.MBPerS, r.Ratio)
	}
	tw.Flush()
}

// gritsdBinary is the gritsd every suite runs: WORK/gritsd, built from
// this checkout the first time a suite asks (or put there by -gritsd).
func gritsdBinary(ctx context.Context, work string) (string, error) {
	bin := filepath.Join(work, "gritsd")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/gritsd")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build gritsd (run from the repository root): %w", err)
	}
	return bin, nil
}
