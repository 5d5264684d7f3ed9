package proto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
)

func TestRoundTrip(t *testing.T) {
	for _, s := range samples(t) {
		t.Run(s.name, func(t *testing.T) {
			b := encode(t, s.msg)
			if got := Size(s.msg); got != len(b) {
				t.Errorf("Size = %d, encoding is %d bytes", got, len(b))
			}
			var w bytes.Buffer
			if err := WriteMessage(&w, s.msg); err != nil {
				t.Fatalf("WriteMessage: %v", err)
			}
			if !bytes.Equal(w.Bytes(), b) {
				t.Fatalf("WriteMessage and AppendMessage differ:\n%x\n%x", w.Bytes(), b)
			}
			m, err := read(b)
			if err != nil {
				t.Fatalf("ReadMessage: %v\n%x", err, b)
			}
			if m.Type() != s.msg.Type() {
				t.Fatalf("read %v, wrote %v", m.Type(), s.msg.Type())
			}
			if re := encode(t, m); !bytes.Equal(re, b) {
				t.Fatalf("re-encoding differs:\n in %x\nout %x", b, re)
			}
			checkSameContent(t, s.msg, m)
		})
	}
}

// checkSameContent compares what the re-encoding cannot show: the
// decompressed data.
func checkSameContent(t *testing.T, want, got Message) {
	t.Helper()
	switch w := want.(type) {
	case *Block:
		g := got.(*Block)
		if !bytes.Equal(g.Data(), w.Data()) || g.Encoding() != w.Encoding() || g.Hash != w.Hash || g.Offset != w.Offset || g.Total != w.Total {
			t.Errorf("block differs: got %v %d/%d %d bytes, want %v %d/%d %d bytes",
				g.Encoding(), g.Offset, g.Total, len(g.Data()), w.Encoding(), w.Offset, w.Total, len(w.Data()))
		}
	case *LookupResult:
		g := got.(*LookupResult)
		gd, gok := g.Inline()
		wd, wok := w.Inline()
		if (g.Root == nil) != (w.Root == nil) || g.Root != nil && g.Root.Hash() != w.Root.Hash() {
			t.Errorf("lookup result root differs")
		}
		if g.Status != w.Status || gok != wok || !bytes.Equal(gd, wd) || g.InlineEncoding() != w.InlineEncoding() {
			t.Errorf("lookup result differs: got %v inline %v %v %d bytes, want %v inline %v %v %d bytes",
				g.Status, gok, g.InlineEncoding(), len(gd), w.Status, wok, w.InlineEncoding(), len(wd))
		}
	case *Root:
		if got.(*Root).Root.Hash() != w.Root.Hash() {
			t.Errorf("root differs")
		}
	}
}

func TestSampleEncodings(t *testing.T) {
	// The samples are meant to cover both encodings; make sure they do,
	// or the round trips above prove less than they seem to.
	want := map[string]Encoding{
		"Block/raw": Raw, "Block/zstd": Zstd, "Block/empty": Raw, "Block/range": Raw, "Block/range-zstd": Zstd,
		"LookupResult/found-inline": Raw, "LookupResult/found-inline-zstd": Zstd,
	}
	for _, s := range samples(t) {
		e, ok := want[s.name]
		if !ok {
			continue
		}
		var got Encoding
		switch m := s.msg.(type) {
		case *Block:
			got = m.Encoding()
		case *LookupResult:
			got = m.InlineEncoding()
		}
		if got != e {
			t.Errorf("%s: encoding %v, want %v", s.name, got, e)
		}
	}
}

// TestTruncated: every proper prefix of a frame fails, cleanly.
func TestTruncated(t *testing.T) {
	for _, s := range samples(t) {
		t.Run(s.name, func(t *testing.T) {
			b := encode(t, s.msg)
			for n := range len(b) {
				m, err := read(b[:n])
				if err == nil {
					t.Fatalf("prefix of %d/%d bytes decoded as %v", n, len(b), m.Type())
				}
				if n == 0 {
					if err != io.EOF {
						t.Fatalf("empty input: %v, want io.EOF", err)
					}
					continue
				}
				if !errors.Is(err, ErrMalformed) || !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("prefix of %d/%d bytes: %v, want ErrMalformed wrapping io.ErrUnexpectedEOF", n, len(b), err)
				}
			}
		})
	}
}

// opaque reports whether m's payload is one opaque body (Enroll, Grant,
// SwarmKeys): any non-empty prefix of it, or the body with a byte more,
// is itself a valid body.
func opaque(m Message) bool {
	switch m.(type) {
	case *Enroll, *Grant, *SwarmKeys, *GetTLSCert, *TLSCert:
		return true
	}
	return false
}

// TestTruncatedPayload: a payload cut short but framed with its shorter
// length fails too, so decoders do not lean on the frame length to find
// their fields. A Block's data is the rest of the frame, so only its
// header is cut; an opaque body is the whole payload, so only the empty
// one is refused.
func TestTruncatedPayload(t *testing.T) {
	for _, s := range samples(t) {
		t.Run(s.name, func(t *testing.T) {
			b := encode(t, s.msg)
			payload := b[1+uvarintLen(uint64(s.msg.payloadLen())):]
			cuts := len(payload)
			if blk, ok := s.msg.(*Block); ok {
				cuts = len(blk.appendHead(nil))
			}
			if opaque(s.msg) {
				cuts = 1
			}
			for n := range cuts {
				frame := append([]byte{byte(s.msg.Type())}, binary.AppendUvarint(nil, uint64(n))...)
				frame = append(frame, payload[:n]...)
				if m, err := read(frame); err == nil {
					t.Fatalf("payload cut to %d/%d bytes decoded as %v", n, len(payload), m.Type())
				} else if !errors.Is(err, ErrMalformed) {
					t.Fatalf("payload cut to %d bytes: %v, want ErrMalformed", n, err)
				}
			}
			// And one byte too many is refused too (except for Block
			// and the opaque bodies, where the byte becomes data, and the
			// fixed-size types, where the limit refuses it).
			if _, ok := s.msg.(*Block); ok || opaque(s.msg) {
				return
			}
			frame := append([]byte{byte(s.msg.Type())}, binary.AppendUvarint(nil, uint64(len(payload)+1))...)
			frame = append(append(frame, payload...), 0)
			if m, err := read(frame); err == nil {
				t.Fatalf("payload with a trailing byte decoded as %v", m.Type())
			} else if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("payload with a trailing byte: %v", err)
			}
		})
	}
}

// TestSelfDelimiting: ReadMessage consumes exactly one frame, so the byte
// after it, or the next frame, is still there to read.
func TestSelfDelimiting(t *testing.T) {
	for _, s := range samples(t) {
		t.Run(s.name, func(t *testing.T) {
			b := encode(t, s.msg)
			r := bufio.NewReader(bytes.NewReader(append(b[:len(b):len(b)], 0xAB)))
			if _, err := ReadMessage(r); err != nil {
				t.Fatalf("ReadMessage: %v", err)
			}
			if c, err := r.ReadByte(); err != nil || c != 0xAB {
				t.Fatalf("after the frame: %#x, %v; want 0xab", c, err)
			}
			if _, err := r.ReadByte(); err != io.EOF {
				t.Fatalf("more bytes than written: %v", err)
			}
		})
	}
	t.Run("stream", func(t *testing.T) {
		var stream []byte
		all := samples(t)
		for _, s := range all {
			stream = append(stream, encode(t, s.msg)...)
		}
		r := bufio.NewReader(bytes.NewReader(stream))
		for _, s := range all {
			m, err := ReadMessage(r)
			if err != nil || m.Type() != s.msg.Type() {
				t.Fatalf("%s: got %v, %v", s.name, m, err)
			}
		}
		if m, err := ReadMessage(r); err != io.EOF {
			t.Fatalf("after the last frame: %v, %v; want io.EOF", m, err)
		}
	})
}

func frame(typ Type, payload ...[]byte) []byte {
	p := bytes.Join(payload, nil)
	b := append([]byte{byte(typ)}, binary.AppendUvarint(nil, uint64(len(p)))...)
	return append(b, p...)
}

func uv(v uint64) []byte { return binary.AppendUvarint(nil, v) }

// bytesAllocated returns the bytes allocated per call of f.
func bytesAllocated(runs uint64, f func()) uint64 {
	f()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / runs
}

// TestRefusedBeforeAllocation: lengths and counts beyond their limits are
// refused from the header, without allocating what they claim.
func TestRefusedBeforeAllocation(t *testing.T) {
	h := hashOf("x")
	cases := []struct {
		name  string
		input []byte
		want  error
		limit string
	}{
		{"frame-length-2^60", append([]byte{byte(TypeBlock)}, uv(1<<60)...), ErrFrameTooLarge, "limit"},
		{"frame-length-max-uint64", append([]byte{byte(TypeLookupResult)}, uv(1<<64-1)...), ErrFrameTooLarge, "limit"},
		{"block-one-over", append([]byte{byte(TypeBlock)}, uv(MaxBlockPayload+1)...), ErrFrameTooLarge, "limit"},
		{"lookup-result-one-over", append([]byte{byte(TypeLookupResult)}, uv(MaxLookupResultPayload+1)...), ErrFrameTooLarge, "limit"},
		{"get-root-one-byte", append([]byte{byte(TypeGetRoot)}, uv(1)...), ErrFrameTooLarge, "limit"},
		{"root-187", append([]byte{byte(TypeRoot)}, uv(tree.RootSize+1)...), ErrFrameTooLarge, "limit"},
		{"error-over", append([]byte{byte(TypeError)}, uv(MaxErrorPayload+1)...), ErrFrameTooLarge, "limit"},
		{"get-blocks-count-2^40", frame(TypeGetBlocks, []byte{1}, uv(1<<40), h[:]), ErrMalformed, "MaxBatch"},
		{"get-blocks-count-257", frame(TypeGetBlocks, []byte{1}, uv(MaxBatch+1), h[:]), ErrMalformed, "MaxBatch"},
		{"lookup-path-2^50", frame(TypeLookup, []byte{0}, h[:], uv(1<<50), []byte("a"), uv(0)), ErrMalformed, "MaxPathLen"},
		{"lookup-path-4097", frame(TypeLookup, []byte{0}, h[:], uv(tree.MaxPathLen+1), []byte("a"), uv(0)), ErrMalformed, "MaxPathLen"},
		{"error-message-2^62", frame(TypeError, []byte{0, 1}, uv(1<<62), []byte("x")), ErrMalformed, "MaxErrorMessage"},
		{"proof-length-over", frame(TypeLookupResult, []byte{1, 0}, uv(tree.MaxProofSize+1), []byte{0}), ErrMalformed, "MaxProofSize"},
		{"proof-nodes-2^40", frame(TypeLookupResult, []byte{1, 0}, uv(6), uv(1<<40), []byte{0}), ErrMalformed, "nodes"},
		{"inline-length-over", frame(TypeLookupResult, []byte{1, 0}, uv(1), uv(0), []byte{inlineRaw}, uv(InlineMax+1), []byte("x")), ErrMalformed, "InlineMax"},
		{"get-roots-over", append([]byte{byte(TypeGetRoots)}, uv(MaxGetRootsPayload+1)...), ErrFrameTooLarge, "limit"},
		{"get-roots-max-257", frame(TypeGetRoots, uv(0), uv(MaxRootsPerRequest+1)), ErrMalformed, "MaxRootsPerRequest"},
		{"get-roots-max-2^63", frame(TypeGetRoots, uv(0), uv(1<<63)), ErrMalformed, "MaxRootsPerRequest"},
		{"enroll-one-over", append([]byte{byte(TypeEnroll)}, uv(MaxTokenSize+1)...), ErrFrameTooLarge, "limit"},
		{"enroll-2^60", append([]byte{byte(TypeEnroll)}, uv(1<<60)...), ErrFrameTooLarge, "limit"},
		{"get-swarm-keys-one-byte", append([]byte{byte(TypeGetSwarmKeys)}, uv(1)...), ErrFrameTooLarge, "limit"},
		{"grant-one-over", append([]byte{byte(TypeGrant)}, uv(MaxGrantSize+1)...), ErrFrameTooLarge, "limit"},
		{"swarm-keys-one-over", append([]byte{byte(TypeSwarmKeys)}, uv(MaxSwarmKeysSize+1)...), ErrFrameTooLarge, "limit"},
		{"get-tls-cert-one-over", append([]byte{byte(TypeGetTLSCert)}, uv(MaxTLSCertRequestSize+1)...), ErrFrameTooLarge, "limit"},
		{"tls-cert-one-over", append([]byte{byte(TypeTLSCert)}, uv(MaxTLSCertSize+1)...), ErrFrameTooLarge, "limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := read(c.input)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.limit) {
				t.Errorf("error %q does not name the limit (%s)", err, c.limit)
			}
			// bufio.Reader's own 4 KiB buffer and the error text are
			// all a refused frame may cost.
			if n := bytesAllocated(50, func() { _, _ = read(c.input) }); n > 16<<10 {
				t.Errorf("refusing it allocated %d bytes", n)
			}
		})
	}
}

// TestClaimWithoutData: a LookupResult may be large, but claiming 8 MiB
// and sending a few bytes costs kilobytes; a large one that does arrive
// is read whole.
func TestClaimWithoutData(t *testing.T) {
	input := append([]byte{byte(TypeLookupResult)}, uv(MaxLookupResultPayload)...)
	input = append(input, 1, 2, 3)
	_, err := read(input)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
	}
	if n := bytesAllocated(50, func() { _, _ = read(input) }); n > 4*growStart {
		t.Errorf("allocated %d bytes for a frame that sent 3", n)
	}

	// A proof of 40 nodes of 60 KiB: a 2.4 MB frame, over eagerAlloc.
	proof := &tree.Proof{}
	for i := range 40 {
		proof.Nodes = append(proof.Nodes, bytes.Repeat([]byte{byte(i)}, 60<<10))
	}
	big := encode(t, NewLookupResult(tree.Absent, proof, nil, false))
	if len(big) <= eagerAlloc {
		t.Fatalf("test frame of %d bytes is not over eagerAlloc", len(big))
	}
	for _, n := range []int{len(big), len(big) - 1, eagerAlloc, growStart + 1} {
		m, err := read(big[:n])
		if n == len(big) {
			if err != nil || len(m.(*LookupResult).Proof.Nodes) != 40 {
				t.Fatalf("the whole frame: %v", err)
			}
		} else if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d: %v, want io.ErrUnexpectedEOF", n, err)
		}
	}
}

func TestUnknownType(t *testing.T) {
	for _, typ := range []byte{0x00, 0x09, 0x3F, 0x47, 0x7E, 0x80, 0xFF} {
		t.Run(Type(typ).String(), func(t *testing.T) {
			r := bufio.NewReader(bytes.NewReader([]byte{typ, 0x01, 0x00}))
			_, err := ReadMessage(r)
			if !errors.Is(err, ErrUnknownType) {
				t.Fatalf("got %v, want ErrUnknownType", err)
			}
			// Nothing after the type byte is read: the stream is not
			// ours and must not be interpreted further.
			if r.Buffered() != 2 {
				t.Errorf("read past the type byte: %d bytes left, want 2", r.Buffered())
			}
		})
	}
}

func TestReadRequestResponse(t *testing.T) {
	huge := append([]byte{byte(TypeLookupResult)}, uv(MaxLookupResultPayload)...)
	block := encode(t, NewBlock(hashOf("x"), 0, 1, []byte("x"), false))
	missing := encode(t, &Missing{Hash: hashOf("y")})
	errFrame := encode(t, &Error{Code: CodeOverloaded})
	rootFrame := encode(t, &Root{})
	get := encode(t, &GetBlocks{Hashes: []blockstore.Hash{hashOf("x")}})
	grant := encode(t, &Grant{Body: []byte("g")})
	keys := encode(t, &SwarmKeys{Body: []byte("k")})
	enroll := encode(t, &Enroll{Token: []byte("t")})
	hugeGrant := append([]byte{byte(TypeGrant)}, uv(MaxGrantPayload)...)
	cases := []struct {
		name string
		read func(*bufio.Reader) (Message, error)
		in   []byte
		ok   bool
	}{
		{"request/GetBlocks", ReadRequest, get, true},
		{"request/refuses-response-before-payload", ReadRequest, huge, false},
		{"request/refuses-error", ReadRequest, errFrame, false},
		{"response-to-GetBlocks/Block", respTo(TypeGetBlocks), block, true},
		{"response-to-GetBlocks/Missing", respTo(TypeGetBlocks), missing, true},
		{"response-to-GetBlocks/Error", respTo(TypeGetBlocks), errFrame, true},
		{"response-to-GetBlocks/Root", respTo(TypeGetBlocks), rootFrame, false},
		{"response-to-GetBlock/Missing", respTo(TypeGetBlock), missing, false},
		{"response-to-GetRoot/Root", respTo(TypeGetRoot), rootFrame, true},
		{"response-to-Lookup/huge-Block", respTo(TypeLookup), block, false},
		{"response-to-GetBlock/request", respTo(TypeGetBlock), get, false},
		{"request/Enroll", ReadRequest, enroll, true},
		{"request/refuses-Grant-before-payload", ReadRequest, hugeGrant, false},
		{"request/refuses-SwarmKeys", ReadRequest, keys, false},
		{"response-to-GetRoots/Root", respTo(TypeGetRoots), rootFrame, true},
		{"response-to-GetRoots/Error", respTo(TypeGetRoots), errFrame, true},
		{"response-to-GetRoots/Block", respTo(TypeGetRoots), block, false},
		{"response-to-GetRoots/Grant", respTo(TypeGetRoots), grant, false},
		{"response-to-Enroll/Grant", respTo(TypeEnroll), grant, true},
		{"response-to-Enroll/Error", respTo(TypeEnroll), errFrame, true},
		{"response-to-Enroll/SwarmKeys", respTo(TypeEnroll), keys, false},
		{"response-to-Enroll/Root", respTo(TypeEnroll), rootFrame, false},
		{"response-to-GetSwarmKeys/SwarmKeys", respTo(TypeGetSwarmKeys), keys, true},
		{"response-to-GetSwarmKeys/Error", respTo(TypeGetSwarmKeys), errFrame, true},
		{"response-to-GetSwarmKeys/Grant", respTo(TypeGetSwarmKeys), grant, false},
		{"response-to-GetTLSCert/TLSCert", respTo(TypeGetTLSCert), encode(t, &TLSCert{Body: []byte("c")}), true},
		{"response-to-GetTLSCert/SwarmKeys", respTo(TypeGetTLSCert), keys, false},
		{"request/GetTLSCert", ReadRequest, encode(t, &GetTLSCert{Body: []byte("q")}), true},
		{"request/refuses-TLSCert", ReadRequest, encode(t, &TLSCert{Body: []byte("c")}), false},
		{"response-to-GetRoot/Grant", respTo(TypeGetRoot), grant, false},
		{"response-to-GetBlocks/SwarmKeys", respTo(TypeGetBlocks), keys, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.read(bufio.NewReader(bytes.NewReader(c.in)))
			switch {
			case c.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case !c.ok && !errors.Is(err, ErrUnexpectedType):
				t.Fatalf("got %v, want ErrUnexpectedType", err)
			}
		})
	}
}

func respTo(req Type) func(*bufio.Reader) (Message, error) {
	return func(r *bufio.Reader) (Message, error) { return ReadResponse(r, req) }
}

// TestMalformed: frames within their limits whose contents are wrong.
func TestMalformed(t *testing.T) {
	h := hashOf("x")
	s := testSite(t)
	rootEnc := s.root.Encode()
	badTag := append([]byte{'X'}, rootEnc[1:]...)
	zText := func(b []byte) []byte { return codecs().enc.EncodeAll(b, nil) }
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"length-non-minimal", []byte{byte(TypeGetRoot), 0x80, 0x00}, "non-minimal"},
		{"length-overflow", append([]byte{byte(TypeGetRoot)}, bytes.Repeat([]byte{0xFF}, 10)...), "overflows"},
		{"get-block-flags", frame(TypeGetBlock, h[:], []byte{0x02}, uv(0), uv(0)), "unknown flags"},
		{"get-block-varint-non-minimal", frame(TypeGetBlock, h[:], []byte{0}, []byte{0x81, 0x00}, uv(0)), "non-minimal"},
		{"get-block-offset-beyond", frame(TypeGetBlock, h[:], []byte{0}, uv(blockstore.MaxBlockSize+1), uv(0)), "MaxBlockSize"},
		{"get-block-range-beyond", frame(TypeGetBlock, h[:], []byte{0}, uv(1), uv(blockstore.MaxBlockSize)), "MaxBlockSize"},
		{"get-block-trailing", frame(TypeGetBlock, h[:], []byte{0}, uv(0), uv(0), []byte{0}), "trailing"},
		{"get-blocks-zero", frame(TypeGetBlocks, []byte{0}, uv(0)), "MaxBatch"},
		{"get-blocks-short", frame(TypeGetBlocks, []byte{0}, uv(2), h[:]), "needs 64 bytes"},
		{"get-blocks-duplicate", frame(TypeGetBlocks, []byte{0}, uv(2), h[:], h[:]), "twice"},
		{"get-blocks-flags", frame(TypeGetBlocks, []byte{0x80}, uv(1), h[:]), "unknown flags"},
		{"lookup-flags", frame(TypeLookup, []byte{0xFF}, h[:], uv(0), uv(0)), "unknown flags"},
		{"root-bad-tag", frame(TypeRoot, badTag), "tag"},
		{"root-short", frame(TypeRoot, rootEnc[:185]), "bytes"},
		{"block-unknown-encoding", frame(TypeBlock, h[:], []byte{2}, uv(0), uv(1), []byte("x")), "unknown encoding"},
		{"block-total-beyond", frame(TypeBlock, h[:], []byte{0}, uv(0), uv(blockstore.MaxBlockSize+1)), "MaxBlockSize"},
		{"block-offset-beyond-total", frame(TypeBlock, h[:], []byte{0}, uv(5), uv(4)), "offset 5"},
		{"block-data-beyond-total", frame(TypeBlock, h[:], []byte{0}, uv(2), uv(4), []byte("abc")), "outside"},
		{"block-zstd-garbage", frame(TypeBlock, h[:], []byte{1}, uv(0), uv(4), []byte("abcd")), "zstd"},
		{"block-zstd-beyond-total", frame(TypeBlock, h[:], []byte{1}, uv(0), uv(100), zText(text(101))), "more than total-offset = 100 bytes"},
		{"block-zstd-beyond-rest", frame(TypeBlock, h[:], []byte{1}, uv(50), uv(100), zText(text(51))), "more than total-offset = 50 bytes"},
		{"missing-short", frame(TypeMissing, h[:31]), "truncated"},
		{"missing-long", frame(TypeMissing, h[:], []byte{0}), ""}, // refused by the limit
		{"lookup-result-status-0", frame(TypeLookupResult, []byte{0, 0}, uv(1), uv(0), []byte{0}), "unknown status 0"},
		{"lookup-result-status-5", frame(TypeLookupResult, []byte{5, 0}, uv(1), uv(0), []byte{0}), "unknown status 5"},
		{"lookup-result-bad-proof", frame(TypeLookupResult, []byte{1, 0}, uv(2), uv(1), uv(5), []byte{0}), "invalid proof"},
		{"lookup-result-root-flag-2", frame(TypeLookupResult, []byte{1, 2}, uv(1), uv(0), []byte{0}), "root presence byte 2"},
		{"lookup-latest-with-tree", frame(TypeLookup, []byte{flagLatest}, hashBytes("t"), uv(0), uv(0)), "Latest lookup with a tree hash"},
		{"lookup-result-inline-3", frame(TypeLookupResult, []byte{1, 0}, uv(1), uv(0), []byte{3}, uv(0)), "unknown inline encoding"},
		{"lookup-result-inline-absent", frame(TypeLookupResult, []byte{2, 0}, uv(1), uv(0), []byte{1}, uv(1), []byte("x")), "inline data with status absent"},
		{"lookup-result-inline-trailing", frame(TypeLookupResult, []byte{1, 0}, uv(1), uv(0), []byte{1}, uv(1), []byte("xy")), "trailing"},
		{"lookup-result-inline-zstd-beyond", frame(TypeLookupResult, []byte{1, 0}, uv(1), uv(0), []byte{2}, uv(uint64(len(zText(make([]byte, InlineMax+1))))), zText(make([]byte, InlineMax+1))), "InlineMax"},
		{"error-invalid-utf8", frame(TypeError, []byte{0, 1}, uv(2), []byte{0xC3, 0x28}), "UTF-8"},
		{"error-short-code", frame(TypeError, []byte{0}), "truncated"},
		{"error-length-mismatch", frame(TypeError, []byte{0, 1}, uv(3), []byte("ab")), "truncated"},
		{"get-roots-max-0", frame(TypeGetRoots, uv(5), uv(0)), "MaxRootsPerRequest"},
		{"get-roots-no-max", frame(TypeGetRoots, uv(5)), "truncated"},
		{"get-roots-empty", frame(TypeGetRoots), "truncated"},
		{"get-roots-trailing", frame(TypeGetRoots, uv(5), uv(1), []byte{0}), "trailing"},
		{"get-roots-after-non-minimal", frame(TypeGetRoots, []byte{0x85, 0x00}, uv(1)), "non-minimal"},
		{"get-roots-max-non-minimal", frame(TypeGetRoots, uv(0), []byte{0x81, 0x00}), "non-minimal"},
		{"get-roots-after-overflow", frame(TypeGetRoots, bytes.Repeat([]byte{0xFF}, 9), []byte{0x02}, uv(1)), "overflows"},
		{"enroll-empty", frame(TypeEnroll), "token of 0 bytes"},
		{"grant-empty", frame(TypeGrant), "grant of 0 bytes"},
		{"swarm-keys-empty", frame(TypeSwarmKeys), "swarm keys of 0 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := read(c.in)
			if err == nil {
				t.Fatalf("decoded as %v: %x", m.Type(), c.in)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("%v: not ErrMalformed or ErrFrameTooLarge", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

// TestEncodeRefuses: AppendMessage refuses what ReadMessage would,
// leaving dst as it was.
func TestEncodeRefuses(t *testing.T) {
	h := hashOf("x")
	many := make([]blockstore.Hash, MaxBatch+1)
	for i := range many {
		many[i] = blockstore.Sum([]byte{byte(i), byte(i >> 8)})
	}
	proof := &tree.Proof{Nodes: [][]byte{{1}}}
	cases := []struct {
		name string
		msg  Message
	}{
		{"get-block-range", &GetBlock{Hash: h, Offset: blockstore.MaxBlockSize, Length: 1}},
		{"get-block-overflow", &GetBlock{Hash: h, Offset: 1 << 63, Length: 1 << 63}},
		{"get-blocks-none", &GetBlocks{}},
		{"get-blocks-too-many", &GetBlocks{Hashes: many}},
		{"get-blocks-duplicate", &GetBlocks{Hashes: []blockstore.Hash{h, hashOf("y"), h}}},
		{"lookup-path", &Lookup{Path: strings.Repeat("a", tree.MaxPathLen+1)}},
		{"block-too-large", NewBlock(h, 0, blockstore.MaxBlockSize+1, make([]byte, blockstore.MaxBlockSize+1), false)},
		{"block-beyond-total", NewBlock(h, 1, 2, []byte("ab"), false)},
		{"block-total-overflow", NewBlock(h, 1<<64-1, 5, []byte("ab"), false)},
		{"lookup-result-no-proof", &LookupResult{Status: tree.Found}},
		{"lookup-result-status", &LookupResult{Status: 9, Proof: proof}},
		{"lookup-result-inline-absent", NewLookupResult(tree.Absent, proof, []byte("x"), false)},
		{"lookup-result-inline-too-large", NewLookupResult(tree.Found, proof, noise(InlineMax+1), true)},
		{"lookup-result-proof-node", &LookupResult{Status: tree.Found, Proof: &tree.Proof{Nodes: [][]byte{make([]byte, tree.MaxNodeSize+1)}}}},
		{"error-long", &Error{Code: 1, Message: strings.Repeat("x", MaxErrorMessage+1)}},
		{"error-utf8", &Error{Code: 1, Message: "\xff"}},
		{"get-roots-max-0", &GetRoots{After: 1}},
		{"get-roots-max-257", &GetRoots{Max: MaxRootsPerRequest + 1}},
		{"enroll-empty", &Enroll{}},
		{"enroll-too-long", &Enroll{Token: make([]byte, MaxTokenSize+1)}},
		{"grant-empty", &Grant{Body: []byte{}}},
		{"grant-too-long", &Grant{Body: make([]byte, MaxGrantSize+1)}},
		{"swarm-keys-empty", &SwarmKeys{}},
		{"tls-cert-empty", &TLSCert{}},
		{"get-tls-cert-too-long", &GetTLSCert{Body: make([]byte, MaxTLSCertRequestSize+1)}},
		{"swarm-keys-too-long", &SwarmKeys{Body: make([]byte, MaxSwarmKeysSize+1)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := AppendMessage(dst, c.msg)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
			if string(out) != "keep" {
				t.Errorf("dst changed to %q", out)
			}
			if err := WriteMessage(io.Discard, c.msg); !errors.Is(err, ErrMalformed) {
				t.Errorf("WriteMessage: %v, want ErrMalformed", err)
			}
		})
	}
}

func TestTypeStrings(t *testing.T) {
	for _, s := range samples(t) {
		if strings.HasPrefix(s.msg.Type().String(), "Type(") {
			t.Errorf("%s: type %v has no name", s.name, s.msg.Type())
		}
		if s.msg.Type().IsRequest() == s.msg.Type().IsResponse() {
			t.Errorf("%s: %v is both or neither a request and a response", s.name, s.msg.Type())
		}
	}
	if got := Type(0x99).String(); got != "Type(0x99)" {
		t.Errorf("unknown type prints as %q", got)
	}
}

// TestWireNumbers pins the numbers: a change here is a protocol change
// and needs a new ALPN version.
func TestWireNumbers(t *testing.T) {
	pins := []struct {
		name      string
		got, want uint64
	}{
		{"GetRoot", uint64(TypeGetRoot), 0x01},
		{"GetBlock", uint64(TypeGetBlock), 0x02},
		{"GetBlocks", uint64(TypeGetBlocks), 0x03},
		{"Lookup", uint64(TypeLookup), 0x04},
		{"GetRoots", uint64(TypeGetRoots), 0x05},
		{"Enroll", uint64(TypeEnroll), 0x06},
		{"GetSwarmKeys", uint64(TypeGetSwarmKeys), 0x07},
		{"Root", uint64(TypeRoot), 0x40},
		{"Block", uint64(TypeBlock), 0x41},
		{"Missing", uint64(TypeMissing), 0x42},
		{"LookupResult", uint64(TypeLookupResult), 0x43},
		{"Grant", uint64(TypeGrant), 0x44},
		{"SwarmKeys", uint64(TypeSwarmKeys), 0x45},
		{"GetTLSCert", uint64(TypeGetTLSCert), 0x08},
		{"TLSCert", uint64(TypeTLSCert), 0x46},
		{"MaxTLSCertRequestSize", MaxTLSCertRequestSize, 4096},
		{"MaxTLSCertSize", MaxTLSCertSize, 16384},
		{"Error", uint64(TypeError), 0x7F},
		{"Raw", uint64(Raw), 0},
		{"Zstd", uint64(Zstd), 1},
		{"MaxBatch", MaxBatch, 256},
		{"InlineMax", InlineMax, 64 << 10},
		{"MaxErrorMessage", MaxErrorMessage, 512},
		{"MaxGetBlockPayload", MaxGetBlockPayload, 53},
		{"MaxGetBlocksPayload", MaxGetBlocksPayload, 8203},
		{"MaxLookupPayload", MaxLookupPayload, 4149},
		{"MaxBlockPayload", MaxBlockPayload, 1048629},
		{"MaxLookupResultPayload", MaxLookupResultPayload, 8454353},
		{"MaxErrorPayload", MaxErrorPayload, 516},
		{"MaxRootsPerRequest", MaxRootsPerRequest, 256},
		{"MaxTokenSize", MaxTokenSize, 2048},
		{"MaxGrantSize", MaxGrantSize, 65536},
		{"MaxSwarmKeysSize", MaxSwarmKeysSize, 4096},
		{"MaxGetRootsPayload", MaxGetRootsPayload, 20},
		{"MaxEnrollPayload", MaxEnrollPayload, 2048},
		{"MaxGetSwarmKeysPayload", MaxGetSwarmKeysPayload, 0},
		{"MaxGrantPayload", MaxGrantPayload, 65536},
		{"MaxSwarmKeysPayload", MaxSwarmKeysPayload, 4096},
		{"MaxPayload", MaxPayload, MaxLookupResultPayload},
	}
	for _, p := range pins {
		if p.got != p.want {
			t.Errorf("%s = %d, pinned at %d", p.name, p.got, p.want)
		}
	}
	for s, w := range map[tree.Status]byte{tree.Found: 1, tree.Absent: 2, tree.NotDir: 3, tree.SymlinkInPath: 4} {
		if b, ok := statusToWire(s); !ok || b != w {
			t.Errorf("status %v goes on the wire as %d, pinned at %d", s, b, w)
		}
		if back, ok := statusFromWire(w); !ok || back != s {
			t.Errorf("wire status %d reads as %v, want %v", w, back, s)
		}
	}
}

// TestIdempotent: only Enroll may not be repeated or sent in 0-RTT.
func TestIdempotent(t *testing.T) {
	for _, s := range samples(t) {
		typ := s.msg.Type()
		want := typ.IsRequest() && typ != TypeEnroll
		if typ.Idempotent() != want {
			t.Errorf("%v: Idempotent() = %v, want %v", typ, typ.Idempotent(), want)
		}
	}
}

// TestGetRootsFields: the two varints are read in order, at any size.
func TestGetRootsFields(t *testing.T) {
	cases := []struct {
		after, max uint64
	}{{0, 1}, {1, 256}, {127, 128}, {128, 127}, {1<<64 - 1, 1}}
	for _, c := range cases {
		m, err := read(frame(TypeGetRoots, uv(c.after), uv(c.max)))
		if err != nil {
			t.Fatalf("after %d max %d: %v", c.after, c.max, err)
		}
		if g := m.(*GetRoots); g.After != c.after || g.Max != c.max {
			t.Errorf("read after %d max %d, wrote %d %d", g.After, g.Max, c.after, c.max)
		}
	}
}

func hashBytes(s string) []byte { h := hashOf(s); return h[:] }
