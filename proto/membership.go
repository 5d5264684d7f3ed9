package proto

import "fmt"

// The membership messages carry bytes this package does not interpret:
// join tokens, grants and swarm keys are defined by the membership layer
// (docs/design.md, "Membership"). Each is the whole payload of its frame,
// 1 byte up to its limit; the frame length is its length. Which peers get
// an answer is the server's policy, decided on the node ID the peer
// proved in the TLS handshake, not here.

// Enroll asks a node to admit the client's node key with a join token.
// Unlike every other request it is not idempotent (a token may be good
// for one use), so it is never sent in 0-RTT data.
type Enroll struct {
	// Token is the join token, 1..MaxTokenSize bytes, opaque here.
	Token []byte
}

func (*Enroll) Type() Type { return TypeEnroll }

func (m *Enroll) check() error {
	return checkBody("token", m.Token, MaxTokenSize, "MaxTokenSize")
}

func (m *Enroll) payloadLen() int                 { return len(m.Token) }
func (m *Enroll) appendPayload(dst []byte) []byte { return append(dst, m.Token...) }
func (m *Enroll) appendHead(dst []byte) []byte    { return dst }
func (m *Enroll) body() []byte                    { return m.Token }

func decodeEnroll(p []byte) (Message, error) {
	m := &Enroll{Token: p}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// Grant answers an Enroll that the server's policy accepted. The body is
// opaque here; the client verifies it as the membership layer says before
// using it.
type Grant struct {
	// Body is 1..MaxGrantSize bytes.
	Body []byte
}

func (*Grant) Type() Type { return TypeGrant }

func (m *Grant) check() error {
	return checkBody("grant", m.Body, MaxGrantSize, "MaxGrantSize")
}

func (m *Grant) payloadLen() int                 { return len(m.Body) }
func (m *Grant) appendPayload(dst []byte) []byte { return append(dst, m.Body...) }
func (m *Grant) appendHead(dst []byte) []byte    { return dst }
func (m *Grant) body() []byte                    { return m.Body }

func decodeGrant(p []byte) (Message, error) {
	m := &Grant{Body: p}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// GetSwarmKeys asks for the keys the swarm's members share. It has no
// fields: who asks is the node ID proven in the handshake.
type GetSwarmKeys struct{}

func (*GetSwarmKeys) Type() Type                      { return TypeGetSwarmKeys }
func (*GetSwarmKeys) check() error                    { return nil }
func (*GetSwarmKeys) payloadLen() int                 { return 0 }
func (*GetSwarmKeys) appendPayload(dst []byte) []byte { return dst }

func decodeGetSwarmKeys(p []byte) (Message, error) {
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: %d payload bytes, want none", ErrMalformed, len(p))
	}
	return &GetSwarmKeys{}, nil
}

// SwarmKeys answers a GetSwarmKeys the server's policy allowed. The body
// is opaque here and secret: the membership layer defines and checks it.
type SwarmKeys struct {
	// Body is 1..MaxSwarmKeysSize bytes.
	Body []byte
}

func (*SwarmKeys) Type() Type { return TypeSwarmKeys }

func (m *SwarmKeys) check() error {
	return checkBody("swarm keys", m.Body, MaxSwarmKeysSize, "MaxSwarmKeysSize")
}

func (m *SwarmKeys) payloadLen() int                 { return len(m.Body) }
func (m *SwarmKeys) appendPayload(dst []byte) []byte { return append(dst, m.Body...) }
func (m *SwarmKeys) appendHead(dst []byte) []byte    { return dst }
func (m *SwarmKeys) body() []byte                    { return m.Body }

func decodeSwarmKeys(p []byte) (Message, error) {
	m := &SwarmKeys{Body: p}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// checkBody holds an opaque body to 1..limit bytes. The frame reader has
// already refused a longer payload before allocating it; this is the
// same rule for the encoder, and the refusal of an empty body.
func checkBody(what string, b []byte, limit int, limitName string) error {
	if len(b) < 1 || len(b) > limit {
		return fmt.Errorf("%w: %s of %d bytes, want 1..%s = %d", ErrMalformed, what, len(b), limitName, limit)
	}
	return nil
}

// GetTLSCert asks a node (the origin) for a TLS server certificate from
// its development CA. The body, opaque here, is the request the
// membership layer defines (docs/design.md, "Development certificates"):
// a certificate request for the client's own TLS key and host names.
// Only members get an answer, judged on the node ID the peer proved in
// the handshake. Repeating it only signs another certificate.
type GetTLSCert struct {
	// Body is 1..MaxTLSCertRequestSize bytes.
	Body []byte
}

func (*GetTLSCert) Type() Type { return TypeGetTLSCert }

func (m *GetTLSCert) check() error {
	return checkBody("TLS certificate request", m.Body, MaxTLSCertRequestSize, "MaxTLSCertRequestSize")
}

func (m *GetTLSCert) payloadLen() int                 { return len(m.Body) }
func (m *GetTLSCert) appendPayload(dst []byte) []byte { return append(dst, m.Body...) }
func (m *GetTLSCert) appendHead(dst []byte) []byte    { return dst }
func (m *GetTLSCert) body() []byte                    { return m.Body }

func decodeGetTLSCert(p []byte) (Message, error) {
	m := &GetTLSCert{Body: p}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// TLSCert answers a GetTLSCert the server's policy allowed: the issued
// certificate chain, opaque here; the client checks it as the
// membership layer says before using it.
type TLSCert struct {
	// Body is 1..MaxTLSCertSize bytes.
	Body []byte
}

func (*TLSCert) Type() Type { return TypeTLSCert }

func (m *TLSCert) check() error {
	return checkBody("TLS certificate", m.Body, MaxTLSCertSize, "MaxTLSCertSize")
}

func (m *TLSCert) payloadLen() int                 { return len(m.Body) }
func (m *TLSCert) appendPayload(dst []byte) []byte { return append(dst, m.Body...) }
func (m *TLSCert) appendHead(dst []byte) []byte    { return dst }
func (m *TLSCert) body() []byte                    { return m.Body }

func decodeTLSCert(p []byte) (Message, error) {
	m := &TLSCert{Body: p}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}
