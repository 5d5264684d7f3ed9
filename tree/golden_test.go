package tree

import "flag"

// updateGolden makes golden-file tests rewrite their files in testdata/
// instead of comparing against them: go test ./tree -run Golden -update
var updateGolden = flag.Bool("update", false, "rewrite golden files in testdata/ instead of comparing with them")
