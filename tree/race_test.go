//go:build race

package tree

// raceEnabled: the race detector slows the 1,000,000-entry directory test
// about tenfold, so under -race it runs a smaller one; .ci/test runs the
// full size without -race.
const raceEnabled = true
