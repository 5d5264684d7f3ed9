// Package demosite is the sample site gritsd demo publishes: a few
// pages, a style sheet, images and a video large enough that players
// seek in it with range requests.
package demosite

import (
	"embed"
	"io/fs"
)

//go:embed all:site
var content embed.FS

// FS returns the site's files, rooted at the site's top directory.
func FS() fs.FS {
	sub, err := fs.Sub(content, "site")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}
