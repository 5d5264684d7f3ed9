module github.com/grits-cdn/grits

go 1.26.8

require lukechampine.com/blake3 v1.4.1

require (
	github.com/klauspost/cpuid/v2 v2.0.9 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/term v0.47.0 // indirect
)
