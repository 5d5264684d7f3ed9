package membership

import (
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/memberlist"
)

// Profile names a set of gossip timers.
type Profile string

// Profiles. LAN suits nodes within a few milliseconds of each other,
// WAN a swarm spread over the Internet (slower probes, more patience
// before declaring a node dead); Local is for tests on one machine.
const (
	ProfileLAN   Profile = "lan"
	ProfileWAN   Profile = "wan"
	ProfileLocal Profile = "local"
)

func (p Profile) config() (*memberlist.Config, error) {
	switch p {
	case "", ProfileLAN:
		return memberlist.DefaultLANConfig(), nil
	case ProfileWAN:
		return memberlist.DefaultWANConfig(), nil
	case ProfileLocal:
		c := memberlist.DefaultLocalConfig()
		// Fast, but with room for a loaded test machine (the race
		// detector, twenty nodes in one process on two shared cores):
		// a probe timeout or a suspicion shorter than a scheduling
		// hiccup makes healthy nodes flap, and a swarm that always has
		// one node briefly dead somewhere never looks whole. Suspicion
		// lasts at least 6 probe intervals (LAN: 4), confirmed by up to
		// 4 other members' probes (3 indirect checks each). And cheap:
		// gossip rounds as often as LAN's, push-pulls every 5 s, no
		// compression (loopback), since a test swarm that eats the CPU
		// starves its own probes.
		c.ProbeInterval = time.Second
		c.ProbeTimeout = 500 * time.Millisecond
		c.IndirectChecks = 3
		c.SuspicionMult = 6
		c.SuspicionMaxTimeoutMult = 3
		c.GossipInterval = 200 * time.Millisecond
		c.RetransmitMult = 4
		c.PushPullInterval = 5 * time.Second
		c.TCPTimeout = 2 * time.Second
		c.EnableCompression = false
		return c, nil
	}
	return nil, fmt.Errorf("gossip profile %q: want lan, wan or local", p)
}

// Timing is what a profile's timers imply for a swarm of a given size:
// the bounds the protocol works to, from memberlist's own formulas. The
// daemon paces re-joins with it; tests derive their deadlines from it
// (with a margin for a loaded machine) instead of guessing.
type Timing struct {
	// Probe is how often each member probes another one.
	Probe time.Duration
	// Spread is how long a broadcast (an alive, dead or root message)
	// keeps being passed on: every member that hears it sends it to
	// random members, retransmit-limit times, one gossip round apart.
	Spread time.Duration
	// PushPull is the interval of the full state exchange with one
	// random member (memberlist stretches it above 32 members): the
	// backstop for anything gossip missed.
	PushPull time.Duration
	// TCP bounds one push-pull (a join is one).
	TCP time.Duration
	// Suspicion is the longest a suspected member is given to refute
	// before it is declared dead (without confirmations from others).
	Suspicion time.Duration
	// Dead: a member that crashed is marked dead by every other member
	// within this: it is probed within about a probe interval, the probe
	// fails within another, the suspicion runs out and the dead message
	// spreads.
	Dead time.Duration
	// Join: a node that joined is known alive by every member within
	// this: its join (one push-pull with a seed), its broadcast, and
	// its "here" message after Spread, which makes any member that
	// missed the broadcast pull its state at once.
	Join time.Duration
	// RejoinMin and RejoinMax bound the backoff between attempts to
	// re-join a member that is known but not alive (jittered by ±20%).
	RejoinMin, RejoinMax time.Duration
	// Reform: a member that restarted, or came back after a freeze or
	// a partition, is known alive everywhere again within this: the
	// longest re-join wait (with its jitter), then the join.
	Reform time.Duration
	// Sync is the anti-entropy round: how often a node compares its
	// root and ban list with what members advertise.
	Sync time.Duration
	// KeyGrace is how long after a node adopts new gossip keys it
	// still sends with the old one (Config.KeyGrace's default).
	KeyGrace time.Duration
	// Root: a new root reaches every member within this: its broadcast
	// spreads, and a member that missed it fetches it at its next
	// anti-entropy round (or the one after, if the first member it asks
	// does not have it yet).
	Root time.Duration
}

// Timing returns the profile's bounds for a swarm of n members.
func (p Profile) Timing(n int) (Timing, error) {
	c, err := p.config()
	if err != nil {
		return Timing{}, err
	}
	return timingOf(c, p, n), nil
}

func timingOf(c *memberlist.Config, p Profile, n int) Timing {
	n = max(n, 1)
	t := Timing{Probe: c.ProbeInterval, TCP: c.TCPTimeout}
	t.Spread = time.Duration(retransmitLimit(c.RetransmitMult, n)) * c.GossipInterval
	t.PushPull = pushPullScale(c.PushPullInterval, n)
	// memberlist starts a suspicion at its longest and shortens it with
	// each confirmation, unless too few members could confirm it.
	min := suspicionTimeout(c.SuspicionMult, n, c.ProbeInterval)
	t.Suspicion = time.Duration(c.SuspicionMaxTimeoutMult) * min
	if n-2 < c.SuspicionMult-2 {
		t.Suspicion = min
	}
	t.Dead = 2*c.ProbeInterval + t.Suspicion + t.Spread
	t.Join = 2*c.TCPTimeout + t.Spread
	t.RejoinMin, t.RejoinMax = c.ProbeInterval, c.PushPullInterval
	t.Reform = t.RejoinMax*6/5 + t.Join
	t.Sync, t.KeyGrace = 2*time.Second, 5*time.Second
	if p == ProfileLocal {
		t.Sync, t.KeyGrace = 200*time.Millisecond, time.Second
	}
	t.Root = t.Spread + 2*t.Sync
	return t
}

// The three functions below are memberlist's (util.go), which it does
// not export.

func retransmitLimit(mult, n int) int {
	return mult * int(math.Ceil(math.Log10(float64(n+1))))
}

func suspicionTimeout(mult, n int, interval time.Duration) time.Duration {
	scale := math.Max(1, math.Log10(math.Max(1, float64(n))))
	return time.Duration(mult) * time.Duration(scale*1000) * interval / 1000
}

func pushPullScale(interval time.Duration, n int) time.Duration {
	const threshold = 32
	if n <= threshold {
		return interval
	}
	return time.Duration(math.Ceil(math.Log2(float64(n))-math.Log2(threshold))+1) * interval
}
