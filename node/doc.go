// Package node builds, runs and stops one gritsd node from its data
// directory and settings: the block store and root log (from
// internal/datadir), the grits/1 server and client (transport), the
// swarm (membership), the browser-facing gateway, the admin socket, and
// on the origin the jobs that keep its root announced and fresh.
//
// The command line (cmd/gritsd/cli) parses flags into a Config and calls
// Start, then Serve; features that live in the daemon (the mount,
// offload, metrics) hang off the Node's accessors instead of growing the
// command.
//
// # Lifecycle
//
// Start binds every socket (so the caller can print the addresses) and
// starts the background jobs; Serve answers grits/1 until its context
// ends; Close stops the jobs and releases what Start took, in reverse
// order. A Node is used once.
package node
