package chromium

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestRealTime: a page's timers run in real time (what --dump-dom's
// virtual time did not give the service worker), Eval awaits promises and
// decodes their values, and Wait sees a condition become true.
func TestRealTime(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(`<!doctype html><title>t</title><script>
window.started = Date.now();
setTimeout(() => { window.fired = Date.now() - window.started; }, 700);
</script>`))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := Start(ctx, Options{Profile: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Navigate(ctx, srv.URL); err != nil {
		t.Fatal(err)
	}
	var sum int
	if err := b.Eval(ctx, `new Promise((ok) => setTimeout(() => ok(1 + 2), 10))`, &sum); err != nil || sum != 3 {
		t.Fatalf("eval: %d, %v", sum, err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := b.Wait(wctx, `window.fired !== undefined`); err != nil {
		t.Fatal(err)
	}
	var fired float64
	if err := b.Eval(ctx, `window.fired`, &fired); err != nil {
		t.Fatal(err)
	}
	// A timer of 700 ms fires after at least 700 ms of wall time.
	if fired < 690 {
		t.Fatalf("the 700 ms timer fired after %v ms", fired)
	}
	short, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer scancel()
	if err := b.Wait(short, `false`); err == nil {
		t.Fatal("Wait on a condition that never holds returned nil")
	}
}
