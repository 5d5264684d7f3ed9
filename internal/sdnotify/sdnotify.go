// Package sdnotify tells systemd how a Type=notify service is doing:
// ready, reloading, stopping. The protocol is one datagram of
// "KEY=value" lines to the unix socket $NOTIFY_SOCKET names (see
// sd_notify(3)); a few lines here rather than a dependency for them.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// States a service sends.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
)

// Reloading is the state for a reload that starts now: systemd wants the
// monotonic clock with it (sd_notify(3), systemd 253 and later).
func Reloading() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "RELOADING=1"
	}
	usec := ts.Nano() / int64(time.Microsecond)
	return "RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(usec, 10)
}

// ErrNoSocket: the process was not started by a service manager that
// listens (NOTIFY_SOCKET is unset). Callers usually ignore it.
var ErrNoSocket = errors.New("sdnotify: NOTIFY_SOCKET is not set")

// Notify sends state to the socket NOTIFY_SOCKET names, as getenv reads
// it. A name starting with @ is in the abstract namespace.
func Notify(getenv func(string) string, state string) error {
	name := getenv("NOTIFY_SOCKET")
	if name == "" {
		return ErrNoSocket
	}
	if name[0] == '@' {
		name = "\x00" + name[1:]
	} else if name[0] != '/' {
		return fmt.Errorf("sdnotify: NOTIFY_SOCKET %q: want a path or an @abstract name", name)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}
