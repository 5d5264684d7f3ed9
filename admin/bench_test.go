package admin

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// discardWriter is the cheapest ResponseWriter, so that the benchmark
// measures the wrapper rather than the recorder.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkHTTPWrapper compares a block-sized answer with and without
// the metrics wrapper: run both and read the ratio.
func BenchmarkHTTPWrapper(b *testing.B) {
	body := make([]byte, 16<<10)
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })
	req := httptest.NewRequest("GET", "/grits/v1/block/b3-0000", nil)
	req.ProtoMajor = 2
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"bare", inner}, {"wrapped", NewMetrics().HTTP(inner)}} {
		b.Run(c.name, func(b *testing.B) {
			w := &discardWriter{h: http.Header{}}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				c.h.ServeHTTP(w, req)
			}
		})
	}
}
