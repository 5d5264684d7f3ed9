package main

import (
	"fmt"
	"html"
	"strings"
)

// chart draws req/s per row as horizontal bars, grouped by case, with
// the ratio to the nginx baseline written beside each bar.
func chart(rs []Result) []byte {
	const rowH, left, width = 26, 330, 420
	var maxv float64
	for _, r := range rs {
		maxv = max(maxv, r.ReqPerS)
	}
	h := rowH*len(rs) + 40
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", left+width+90, h)
	fmt.Fprintf(&b, `<text x="10" y="18" font-weight="bold">Block GETs, requests per second (same machine, same run)</text>`+"\n")
	for i, r := range rs {
		y := 30 + i*rowH
		w := 0.0
		if maxv > 0 {
			w = r.ReqPerS / maxv * width
		}
		color := "#2f6f5e"
		if r.Server == "nginx" {
			color = "#8a8f99"
		}
		label := html.EscapeString(fmt.Sprintf("%s · %s · %s", r.Case, r.Server, r.Protocol))
		fmt.Fprintf(&b, `<text x="10" y="%d">%s</text>`+"\n", y+16, label)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="18" fill="%s"/>`+"\n", left, y+3, w, color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%.0f (%.2fx)</text>`+"\n", float64(left)+w+6, y+16, r.ReqPerS, r.Ratio)
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}
