// Package cli implements the gritsd commands. It is importable so that
// tests and tools can run a command in-process; it never calls os.Exit.
package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"

	"golang.org/x/term"

	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/internal/logging"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitFailure     = 1   // the command ran and failed, or found problems
	ExitUsage       = 2   // bad arguments
	ExitNotReady    = 3   // gritsd status: the daemon runs but is not ready
	ExitInterrupted = 130 // SIGINT/SIGTERM
)

// Env is the process environment a command sees.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Hangup delivers SIGHUP: gritsd serve re-reads its configuration,
	// other commands stop as for SIGINT (their terminal went away).
	Hangup <-chan struct{}
}

type command struct {
	name    string
	args    string
	summary string
	run     func(ctx context.Context, c *cmdContext) error
}

var commands = []command{
	{"init", "[--origin]", "create a data directory: node key; for an origin also the site key and swarm secret", runInit},
	{"import", "SRC [--at PATH] [--keep-mtimes]", "store a directory or file in the tree and commit a new signed root (prints the root hash)", runImport},
	{"ls", "[PATH] [--root HASH]", "list a directory of the tree", runLs},
	{"cat", "PATH [--root HASH]", "write a file of the tree to stdout", runCat},
	{"proof", "PATH [--root HASH] [-o FILE]", "build and verify the path proof, print its size and nodes", runProof},
	{"log", "", "the history of signed roots, newest first", runLog},
	{"fsck", "[--remote]", "verify every block and that retained roots are complete; --remote: storage nodes prove what an origin offloaded", runFsck},
	{"gc", "[--keep N] [--dry-run]", "remove blocks not reachable from the newest retained roots", runGC},
	{"serve", "[--listen ADDR] [--gossip ADDR] [--advertise HOST]", "run the node: join the swarm, answer grits/1 (SIGINT/SIGTERM to stop)", runServe},
	{"token", "[--ttl D] [--role volunteer|storage] [--origin-addr HOST:PORT]", "origin: print a one-time join token", runToken},
	{"join", "TOKEN", "enroll this node with the origin a token names (creates the data directory if needed)", runJoin},
	{"ban", "NODE", "origin: exclude a node from the swarm and rotate the gossip key", runBan},
	{"grant", "NODE --capacity SIZE", "origin: set the most capacity placement counts for a node (default 10 GiB)", runGrant},
	{"status", "[--wait-replicas N] [--timeout D] [--json]", "members, roots and replication, from the running daemon", runStatus},
	{"mount", "MOUNTPOINT [--at PATH] [--quiet D] [--publish RULE] [--owner USER[:GROUP]]", "origin: the tree as a read-write file system; changes become signed roots (SIGINT/SIGTERM unmounts)", runMount},
	{"get", "--peer HOST:PORT [--peer ...] PATH [-o FILE] [--site-key KEY]", "fetch a path from peers, verify it, write it atomically", runGet},
	{"config", "check [--json]", "validate gritsd.toml and print the effective settings", runConfig},
}

// usageError marks errors that are the caller's arguments' fault.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// exitError lets a command choose its exit code after printing its own
// report (fsck finding problems is not a crash).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// cmdContext is what every command gets: its flags, its environment and
// a way to open the data directory.
type cmdContext struct {
	Env
	name      string
	flags     *flag.FlagSet
	dataDir   *string
	logLevel  *string
	logFormat *string
	args      []string
	logger    *slog.Logger
	logs      *logging.Control
	// flagsOnly makes parse stop the command once its flags are
	// defined: commandFlags reads a command's flags that way.
	flagsOnly bool
}

// errFlagsOnly is what parse returns in flagsOnly mode.
var errFlagsOnly = errors.New("flags only")

// commandFlags returns the flags a command defines, without running it.
func commandFlags(cmd *command) *flag.FlagSet {
	fs := flag.NewFlagSet("gritsd "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := &cmdContext{Env: Env{Stdout: io.Discard, Stderr: io.Discard, Stdin: strings.NewReader(""), Getenv: func(string) string { return "" }},
		name: cmd.name, flags: fs, flagsOnly: true}
	c.dataDir = fs.String("data", "", "data directory")
	c.logLevel = fs.String("log-level", "", "log level")
	c.logFormat = fs.String("log-format", "", "log format")
	c.logs = logging.New(io.Discard, logging.Options{})
	c.logger = c.logs.Logger()
	cmd.run(context.Background(), c)
	return fs
}

func (c *cmdContext) dir() (string, error) {
	if *c.dataDir != "" {
		return *c.dataDir, nil
	}
	return datadir.DefaultDir(c.Getenv)
}

func (c *cmdContext) open(ctx context.Context) (*datadir.Dir, error) {
	p, err := c.dir()
	if err != nil {
		return nil, err
	}
	return datadir.Open(ctx, p, c.logger)
}

func (c *cmdContext) printf(format string, args ...any) {
	fmt.Fprintf(c.Stdout, format, args...)
}

func (c *cmdContext) errorf(format string, args ...any) {
	fmt.Fprintf(c.Stderr, format, args...)
}

// parseInterspersed lets flags follow positional arguments
// ("import SRC --at /x"), which the flag package alone does not.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: gritsd COMMAND [flags] [args]\n\ncommands:\n")
	width, nameWidth := 0, 0
	for _, c := range commands {
		width = max(width, len(c.args))
		nameWidth = max(nameWidth, len(c.name))
	}
	cs := append([]command(nil), commands...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-*s %-*s  %s\n", nameWidth, c.name, width, c.args, c.summary)
	}
	fmt.Fprintf(w, "\nEvery command takes --data DIR (default: $GRITS_DATA, else $XDG_DATA_HOME/grits or ~/.local/share/grits).\nRun gritsd COMMAND -h for its flags.\n")
}

// Main runs one gritsd command line and returns the exit code.
func Main(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	var globalData string
	// Accept --data before the command too: gritsd --data D import ...
	for len(args) >= 2 && (args[0] == "--data" || args[0] == "-data") {
		globalData, args = args[1], args[2:]
	}
	if len(args) > 0 {
		if v, ok := strings.CutPrefix(args[0], "--data="); ok {
			globalData, args = v, args[1:]
		}
	}
	if len(args) == 0 {
		usage(env.Stderr)
		return ExitUsage
	}
	switch args[0] {
	case "help", "-h", "--help", "-help":
		usage(env.Stdout)
		return ExitOK
	}
	var cmd *command
	for i := range commands {
		if commands[i].name == args[0] {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(env.Stderr, "gritsd: unknown command %q\n\n", args[0])
		usage(env.Stderr)
		return ExitUsage
	}
	fs := flag.NewFlagSet("gritsd "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "usage: gritsd %s %s\n  %s\n\nflags:\n", cmd.name, cmd.args, cmd.summary)
		fs.PrintDefaults()
	}
	c := &cmdContext{Env: env, name: cmd.name, flags: fs, args: args[1:]}
	c.dataDir = fs.String("data", globalData, "data directory")
	c.logLevel = fs.String("log-level", "", "log level: debug, info, warn, error (default warn; for serve log_level in gritsd.toml, else info)")
	c.logFormat = fs.String("log-format", "", "log format: auto (text on a terminal, JSON lines otherwise), text or json")
	c.logs = logging.New(env.Stderr, logging.Options{Terminal: isTerminal(env.Stderr)})
	c.logger = c.logs.Logger()
	if env.Hangup != nil && cmd.name != "serve" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-env.Hangup:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	err := cmd.run(ctx, c)
	var ue *usageError
	var ee *exitError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(env.Stderr, "gritsd %s: %v\n", cmd.name, err)
		fmt.Fprintf(env.Stderr, "usage: gritsd %s %s\n", cmd.name, cmd.args)
		return ExitUsage
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintf(env.Stderr, "gritsd %s: %s\n", cmd.name, ee.msg)
		}
		return ee.code
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		fmt.Fprintf(env.Stderr, "gritsd %s: interrupted\n", cmd.name)
		return ExitInterrupted
	default:
		fmt.Fprintf(env.Stderr, "gritsd %s: %v\n", cmd.name, err)
		return ExitFailure
	}
}

// isTerminal reports whether w is a terminal (progress bars, text logs).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// setLogging applies --log-level and --log-format (as given, or as
// gritsd.toml filled them in); defaultLevel applies when neither says.
func (c *cmdContext) setLogging(defaultLevel string) error {
	lvl := cmp.Or(*c.logLevel, defaultLevel)
	if lvl != "" {
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(lvl)); err != nil {
			return usagef("--log-level %q: want debug, info, warn or error", lvl)
		}
		c.logs.SetLevel(lv)
	}
	if err := c.logs.SetFormat(*c.logFormat); err != nil {
		return usagef("--log-format: %v", err)
	}
	return nil
}

// parse parses the command's flags and checks the positional count.
func (c *cmdContext) parse(minArgs, maxArgs int) error {
	pos, err := parseInterspersed(c.flags, c.args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: ExitUsage}
	}
	if c.flagsOnly {
		return errFlagsOnly
	}
	if err := c.setLogging(""); err != nil {
		return err
	}
	if len(pos) < minArgs || (maxArgs >= 0 && len(pos) > maxArgs) {
		switch {
		case maxArgs == 0:
			return usagef("takes no arguments, got %q", pos)
		case len(pos) < minArgs:
			return usagef("missing argument")
		default:
			return usagef("too many arguments: %q", pos[maxArgs:])
		}
	}
	c.args = pos
	return nil
}
