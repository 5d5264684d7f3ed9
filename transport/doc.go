// Package transport carries the grits/1 protocol (package proto) over
// QUIC with quic-go: a Server that answers from a node's block store and
// root log, and a Client that pools connections per peer and verifies
// everything it returns.
//
// Vocabulary:
//
//   - peer: a node address ("host:port", UDP).
//   - request: one proto request frame on its own bidirectional stream;
//     the client closes its send side after it, the server closes after
//     its answer. Every request but Enroll is idempotent, but none goes
//     out in 0-RTT data: the server answers nothing before the handshake
//     completes (it must know the peer), so 0-RTT would save no round
//     trip (BenchmarkFirstRequest). Each request gets a context carrying
//     its Peer (PeerFromContext).
//   - credential: opaque bytes a node embeds in its certificate
//     (CertificateWithCredential) for the other side's membership layer
//     to check (PeerCredential, Peer.Credential, ClientConfig.VerifyServer).
//   - round trip: one request and its answer. The Client counts them
//     (Requests), which is how tests check that a small file costs one.
//   - bad peer: a peer that sent something that failed verification: a
//     block whose bytes do not hash to its name, a proof that does not
//     verify, a root that is forged, expired or older than one already
//     accepted, or a frame that breaks the protocol. Such errors wrap
//     ErrBadPeer inside a *PeerError that names the peer, so callers can
//     stop using it.
//
// Limits protect the server: streams per connection (QUIC flow control),
// connections per source IP and in total, a deadline to receive a request
// and one to finish answering it (a slow reader is cut off), and the
// idle and handshake timeouts of QUIC itself.
package transport
