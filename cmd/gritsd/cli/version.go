package cli

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

func init() {
	commands = append(commands,
		command{"version", "", "the version of gritsd, the commit it was built from, the Go that built it", runVersion},
		command{"completion", "bash|zsh", "print the shell completion script (bash: source <(gritsd completion bash))", runCompletion})
}

// BuildInfo describes the running binary.
type BuildInfo struct {
	Version  string // module version, "(devel)" for a build from a checkout
	Commit   string // VCS revision, "" if unknown
	Time     string // commit time
	Modified bool   // built from a tree with uncommitted changes
	Go       string
	Platform string
}

// ReadBuildInfo reads what the Go toolchain recorded in the binary.
func ReadBuildInfo() BuildInfo {
	b := BuildInfo{Version: "unknown", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.Version, b.Go = bi.Main.Version, bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

func runVersion(_ context.Context, c *cmdContext) error {
	if err := c.parse(0, 0); err != nil {
		return err
	}
	b := ReadBuildInfo()
	c.printf("gritsd %s\n", b.Version)
	commit := b.Commit
	switch {
	case commit == "":
		commit = "unknown (built without version control information)"
	case b.Modified:
		commit += " (with uncommitted changes)"
	}
	if b.Time != "" {
		commit += ", " + b.Time
	}
	c.printf("commit %s\n", commit)
	c.printf("go     %s %s\n", b.Go, b.Platform)
	return nil
}

func runCompletion(_ context.Context, c *cmdContext) error {
	if err := c.parse(1, 1); err != nil {
		return err
	}
	switch c.args[0] {
	case "bash":
		_, err := fmt.Fprint(c.Stdout, bashCompletion())
		return err
	case "zsh":
		_, err := fmt.Fprint(c.Stdout, zshCompletion())
		return err
	}
	return usagef("shell %q: want bash or zsh", c.args[0])
}
