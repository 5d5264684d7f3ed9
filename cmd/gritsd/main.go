// Command gritsd is the one binary for a grits origin and its volunteers.
// Everything it does lives in package cli; main only wires the process
// (arguments, standard streams, signals) to it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/grits-cdn/grits/cmd/gritsd/cli"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	// SIGHUP: serve reloads its configuration; a hangup stops others.
	hups := make(chan os.Signal, 1)
	hangup := make(chan struct{}, 1)
	signal.Notify(hups, syscall.SIGHUP)
	go func() {
		for range hups {
			select {
			case hangup <- struct{}{}:
			default: // a reload is already pending
			}
		}
	}()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "gritsd: %v: shutting down (send again to force)\n", s)
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "gritsd: forced exit")
		os.Exit(cli.ExitInterrupted)
	}()
	code := cli.Main(ctx, os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Hangup: hangup})
	cancel()
	os.Exit(code)
}
