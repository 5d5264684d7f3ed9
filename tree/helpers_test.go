package tree

import (
	"bytes"
	"context"
	"path"
	"sort"
	"strings"
	"testing"

	"github.com/grits-cdn/grits/blockstore"
)

// fixture describes a tree: path -> content; content starting with
// "symlink:" makes a symlink to the rest; a path ending in "/" makes an
// empty directory.
type fixture map[string]string

func newBuilder(t testing.TB) *Builder {
	t.Helper()
	return &Builder{Store: blockstore.NewMem(-1), ChunkSize: MinChunkSize}
}

func fileEntry(t testing.TB, b *Builder, content string) Entry {
	t.Helper()
	e, err := b.WriteFileEntry(context.Background(), strings.NewReader(content))
	if err != nil {
		t.Fatalf("WriteFileEntry: %v", err)
	}
	e.Mode = 0o644
	return e
}

// fileNodeEntry is fileEntry with a file node even for one chunk (as
// trees written before direct entries have).
func fileNodeEntry(t testing.TB, b *Builder, content string) Entry {
	t.Helper()
	h, size, err := b.WriteFile(context.Background(), strings.NewReader(content))
	if err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	return Entry{Kind: KindFile, Mode: 0o644, Size: size, Hash: h}
}

func fixtureEntry(t testing.TB, b *Builder, content string) Entry {
	if target, ok := strings.CutPrefix(content, "symlink:"); ok {
		return Entry{Kind: KindSymlink, Mode: 0o777, Size: uint64(len(target)), Target: target}
	}
	return fileEntry(t, b, content)
}

// buildIncremental builds a fixture with one Set per path, in sorted
// order.
func buildIncremental(t testing.TB, b *Builder, fx fixture) blockstore.Hash {
	t.Helper()
	return buildIncrementalTyped(t, b, fx, nil)
}

// buildIncrementalTyped is buildIncremental with media types for some
// of the files (path -> type).
func buildIncrementalTyped(t testing.TB, b *Builder, fx fixture, types map[string]string) blockstore.Hash {
	t.Helper()
	ctx := context.Background()
	root, err := b.EmptyDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(fx))
	for k := range fx {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var e Entry
		if strings.HasSuffix(k, "/") {
			empty, err := b.EmptyDir(ctx)
			if err != nil {
				t.Fatal(err)
			}
			e = Entry{Kind: KindDir, Mode: 0o755, Hash: empty}
		} else {
			e = fixtureEntry(t, b, fx[k])
			e.Type = types[k]
		}
		root, err = b.Set(ctx, root, MustParsePath(k), e)
		if err != nil {
			t.Fatalf("Set %s: %v", k, err)
		}
	}
	return root
}

// buildBulk builds the same fixture bottom-up with BuildDir.
func buildBulk(t testing.TB, b *Builder, fx fixture) blockstore.Hash {
	t.Helper()
	e := buildBulkDir(t, b, fx, "")
	return e.Hash
}

func buildBulkDir(t testing.TB, b *Builder, fx fixture, prefix string) Entry {
	t.Helper()
	children := map[string]bool{}
	for k := range fx {
		if rest, ok := strings.CutPrefix(k, prefix); ok && rest != "" {
			name, _, _ := strings.Cut(rest, "/")
			children[name] = true
		}
	}
	var entries []Entry
	var total uint64
	for name := range children {
		p := prefix + name
		var e Entry
		if content, ok := fx[p]; ok {
			e = fixtureEntry(t, b, content)
		} else {
			e = buildBulkDir(t, b, fx, p+"/")
		}
		e.Name = name
		total += e.Size
		entries = append(entries, e)
	}
	h, err := b.BuildDir(context.Background(), entries)
	if err != nil {
		t.Fatalf("BuildDir %q: %v", prefix, err)
	}
	return Entry{Name: path.Base(prefix), Kind: KindDir, Mode: 0o755, Size: total, Hash: h}
}

func readAll(t testing.TB, g Getter, f *FileNode) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := ReadFile(context.Background(), g, f, 0, f.Size, &buf); err != nil {
		t.Fatalf("ReadFile: %v", err)
	}
	return buf.Bytes()
}
