package datadir

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
)

// TestLongLivedDirSeesOtherCommits: a Dir opened long ago (a running
// serve) and another one (an import) both commit. The first must re-read
// the log when it takes the lock, or it would sign a second root with an
// existing sequence number and leave a log no command can open.
func TestLongLivedDirSeesOtherCommits(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "data")
	d1, err := Init(ctx, path, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d1.Close()
	d2, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.Lock(); err != nil {
		t.Fatal(err)
	}
	if _, err := d2.Commit(ctx, blockstore.Sum([]byte("a")), time.Now()); err != nil {
		t.Fatal(err)
	}
	d2.Close()

	if err := d1.Lock(); err != nil {
		t.Fatal(err)
	}
	r, err := d1.Commit(ctx, blockstore.Sum([]byte("b")), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r.Seq != 2 {
		t.Fatalf("second commit got seq %d, want 2", r.Seq)
	}
	d1.Unlock()
	d3, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatalf("the log no longer opens: %v", err)
	}
	defer d3.Close()
	if got := d3.Log.Len(); got != 2 {
		t.Fatalf("%d roots in the log, want 2", got)
	}
}

// TestStaleLogRefusesAppend: the log itself refuses an append from a
// stale view, whoever forgot to re-read it.
func TestStaleLogRefusesAppend(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "data")
	d1, err := Init(ctx, path, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d1.Close()
	stale := d1.Log
	d2, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.Lock(); err != nil {
		t.Fatal(err)
	}
	first, err := d2.Commit(ctx, blockstore.Sum([]byte("a")), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	d2.Close()
	now := time.Now()
	r, err := tree.SignRoot(d1.SiteKey, tree.Root{Seq: 1, Time: now, Expires: now.Add(time.Hour), Tree: blockstore.Sum([]byte("b"))})
	if err != nil {
		t.Fatal(err)
	}
	if err := stale.Append(ctx, r); !errors.Is(err, tree.ErrLogStale) {
		t.Fatalf("append from a stale view: err = %v, want ErrLogStale (first root %v)", err, first.Seq)
	}
}

func TestInitRefusesExisting(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "data")
	d, err := Init(ctx, path, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := Init(ctx, path, true, nil); !errors.Is(err, ErrExists) {
		t.Fatalf("second init: %v", err)
	}
	if _, err := Open(ctx, filepath.Join(t.TempDir(), "none"), nil); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("open of nothing: %v", err)
	}
}
