module github.com/grits-cdn/grits

go 1.26.8

require (
	github.com/klauspost/compress v1.20.3
	golang.org/x/sys v0.49.0
	golang.org/x/term v0.47.0
	lukechampine.com/blake3 v1.4.1
)

require github.com/klauspost/cpuid/v2 v2.0.9 // indirect
