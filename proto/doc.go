// Package proto is the wire protocol between grits nodes: frames, the
// messages they carry, and the error codes. proto/SPEC.md is the
// specification, byte by byte; this package is its Go implementation and
// changes with it.
//
// proto knows nothing of QUIC. The transport opens one bidirectional
// stream per request; the client writes one request frame (WriteMessage)
// and closes its side; the server reads it (ReadRequest), writes one or
// more response frames and closes; the client reads them (ReadResponse)
// until io.EOF. ALPN "grits/1" names this version.
//
// Vocabulary:
//
//   - frame: type byte, payload length (uvarint), payload. Frames are
//     self-delimiting: ReadMessage consumes exactly one.
//   - message: the Go value of one frame (*GetBlock, *Block, ...),
//     implementing Message.
//   - request: a frame of type 0x01..0x3F, sent by the client.
//   - response: a frame of type 0x40..0x7F, sent by the server.
//   - limit: the largest payload of a type (Max*Payload), checked before
//     anything is allocated; also MaxBatch, MaxErrorMessage, InlineMax,
//     MaxRootsPerRequest, MaxTokenSize, MaxGrantSize, MaxSwarmKeysSize.
//   - opaque body: the payload of Enroll, Grant and SwarmKeys, bytes the
//     membership layer defines and this package only frames and bounds.
//   - encoding: how data travels, Raw or Zstd. A hash always names the
//     uncompressed whole block.
//   - inline data: a small file's whole content sent with its
//     LookupResult, saving the client a round trip per chunk.
//   - wire error: an Error frame, a code and a message; *Error is also a
//     Go error matching the code's sentinel (ErrNotFound, ...) and
//     ErrRemote, and ErrorFor maps local errors to it.
//
// Every decoder is strict: an encoding that decodes is the only encoding
// of its value, so whatever ReadMessage returns, AppendMessage writes back
// byte for byte (FuzzReadMessage checks it). Decoding checks framing and
// limits; it does not verify anything cryptographic. Hashes, proofs and
// root signatures are the client's to verify (Block.Verify, tree.Verify,
// tree.Root.Verify) before anything received is used.
package proto
