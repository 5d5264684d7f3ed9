package main_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// openPTY opens a pseudo-terminal pair: the controlling side the test
// reads, the terminal side a command gets as its stderr.
func openPTY(t *testing.T) (ctl, term *os.File) {
	t.Helper()
	ctl, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	unlock := int32(0)
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, ctl.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatalf("unlockpt: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, ctl.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatalf("ptsname: %v", e)
	}
	term, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	ws := struct{ row, col, x, y uint16 }{24, 120, 0, 0}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, term.Fd(), syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws))); e != 0 {
		t.Fatalf("set window size: %v", e)
	}
	t.Cleanup(func() { ctl.Close(); term.Close() })
	return ctl, term
}

// runOnTerminal runs gritsd with its stderr on a pseudo-terminal and
// returns what the terminal showed; stdout goes to a pipe.
func runOnTerminal(t *testing.T, args ...string) (stdout, screen string, code int) {
	t.Helper()
	ctl, term := openPTY(t)
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, gritsdBin, args...)
	cmd.Env = baseEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, term
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	term.Close() // the child holds it; EOF on ctl once it exits
	read := make(chan string)
	go func() {
		b, _ := io.ReadAll(ctl) // ends with EIO when the child closes it
		read <- string(b)
	}()
	err := cmd.Wait()
	screen = <-read
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), screen, code
}

// TestProgressOnTerminal: on a terminal, import, fsck and gc draw a bar
// with the rate and the time left; stdout still carries only the result.
func TestProgressOnTerminal(t *testing.T) {
	t.Parallel()
	d := newOrigin(t)
	src := newSource(t, []entry{{path: "big.bin", data: randBytes(7, 8<<20)}, {path: "small.txt", data: []byte("hi\n")}})
	stdout, screen, code := runOnTerminal(t, "import", src, "--data", string(d))
	if code != 0 || !treeHashRE.MatchString(strings.TrimSpace(stdout)) {
		t.Fatalf("import on a terminal: exit %d, stdout %q\n%s", code, stdout, screen)
	}
	for _, want := range []string{"import 2/2 files", "100 %", "8.0 MiB / 8.0 MiB", "MiB/s in ", "committed root seq 1"} {
		if !strings.Contains(screen, want) {
			t.Errorf("import's terminal: want %q in\n%q", want, screen)
		}
	}
	_, screen, code = runOnTerminal(t, "fsck", "--data", string(d))
	for _, want := range []string{"fsck: blocks", "fsck: roots", "1 / 1 roots", "no problems found"} {
		if code != 0 || !strings.Contains(screen, want) {
			t.Errorf("fsck's terminal: exit %d, want %q in\n%q", code, want, screen)
		}
	}
	stdout, screen, code = runOnTerminal(t, "gc", "--data", string(d))
	for _, want := range []string{"gc: mark", "gc: sweep"} {
		if code != 0 || !strings.Contains(screen, want) || !strings.HasPrefix(stdout, "gc: kept") {
			t.Errorf("gc's terminal: exit %d, stdout %q, want %q in\n%q", code, stdout, want, screen)
		}
	}
}

// TestProgressQuietOffTerminal: with stderr a pipe or a file (a script,
// a service), nothing is drawn: no carriage returns, no escape codes.
func TestProgressQuietOffTerminal(t *testing.T) {
	t.Parallel()
	d := newOrigin(t)
	src := newSource(t, []entry{{path: "big.bin", data: randBytes(8, 4<<20)}})
	for _, args := range [][]string{{"import", src}, {"fsck"}, {"gc"}} {
		r := d.must(t, args...)
		if strings.ContainsAny(r.stderr, "\r\x1b") || strings.Contains(r.stderr, "ETA") {
			t.Errorf("%s off a terminal drew progress:\n%q", args[0], r.stderr)
		}
	}
}
