module github.com/grits-cdn/grits

go 1.26.8

require (
	github.com/klauspost/compress v1.20.3
	github.com/quic-go/quic-go v0.65.0
	golang.org/x/sys v0.49.0
	golang.org/x/term v0.47.0
	lukechampine.com/blake3 v1.4.1
)

require (
	github.com/klauspost/cpuid/v2 v2.0.9 // indirect
	golang.org/x/crypto v0.54.0 // indirect
	golang.org/x/net v0.56.0 // indirect
)
