package transport

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/tree"
)

// TestOnAnswer: the server reports every request it read, with its type,
// the bytes its answer took and how it ended.
func TestOnAnswer(t *testing.T) {
	s := newSite(t, map[string][]byte{"a.txt": []byte("hello, answers")})
	var mu sync.Mutex
	var got []Answer
	srv, addr := startServer(t, ServerConfig{Store: s.store, Roots: &rootList{s.root}, OnAnswer: func(a Answer) {
		mu.Lock()
		got = append(got, a)
		mu.Unlock()
	}})
	c := newClient(t, s.pub, nil)
	ctx := t.Context()
	if _, err := c.Lookup(ctx, addr, nil, tree.MustParsePath("a.txt"), proto.InlineMax); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetBlock(ctx, addr, blockstore.Sum([]byte("not stored"))); err == nil {
		t.Fatal("a block the server lacks came back")
	}
	var answers []Answer
	waitFor(t, 10*time.Second, "two answers reported", func() bool {
		mu.Lock()
		defer mu.Unlock()
		answers = append(answers[:0], got...)
		return len(answers) == 2
	})
	// The callback runs once the stream is closed: after the client has
	// its answer, so in either order.
	lookup, block := answers[0], answers[1]
	if lookup.Type != proto.TypeLookup {
		lookup, block = block, lookup
	}
	if lookup.Type != proto.TypeLookup || lookup.Err != nil || lookup.Bytes <= 0 || lookup.Duration <= 0 {
		t.Errorf("lookup answer %+v, want type lookup, no error, bytes and a duration", lookup)
	}
	if block.Type != proto.TypeGetBlock || !errors.Is(block.Err, blockstore.ErrNotFound) || block.Bytes <= 0 {
		t.Errorf("missing block answer %+v, want type get-block failing with not found and an error frame's bytes", block)
	}
	if sum := lookup.Bytes + block.Bytes; sum != srv.Stats().BytesSent {
		t.Errorf("answers add up to %d bytes, the server counts %d", sum, srv.Stats().BytesSent)
	}
}
