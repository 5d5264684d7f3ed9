package datadir

import (
	"testing"
)

// FuzzParseConfig: gritsd.toml is input from disk, edited by hand. Any
// text either parses into a valid config that FormatConfig writes back
// to the same settings, or fails with an error; it never panics. The
// line-editing writer (UpdateConfigText) keeps the same promise.
func FuzzParseConfig(f *testing.F) {
	def, _ := FormatConfig(DefaultConfig())
	f.Add(def)
	s, _ := FormatConfig(sample())
	f.Add(s)
	for _, seed := range []string{
		"version = 1\nrole = \"origin\"\n",
		"listen = \":1\"\nseeds = [\n  \"a:1\",\n  \"b:2\", # comment\n]\n",
		"[swarm]\nlisten = 1\n",
		"root_ttl = \"1h\"\nchunk_size = 65536\nrate_limit = 1.5\nsw_navigate = true\n",
		"a.b.c = 1\n\"quoted\" = 'x'\n",
		"seeds = [\"a]\", 'b[']\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if len(src) > 64<<10 {
			return
		}
		cfg, err := ParseConfig("fuzz.toml", src)
		if err != nil {
			return
		}
		out, err := FormatConfig(cfg)
		if err != nil {
			t.Fatalf("FormatConfig of a parsed config: %v", err)
		}
		back, err := ParseConfig("formatted.toml", out)
		if err != nil {
			t.Fatalf("written config does not parse: %v\n%s", err, out)
		}
		if !sameConfig(&back, &cfg) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", cfg, back)
		}
		next := cfg
		next.Seeds = append([]string{"x:1"}, cfg.Seeds...)
		next.LogLevel = "debug"
		upd, _, err := UpdateConfigText("fuzz.toml", src, cfg, next)
		if err != nil {
			t.Fatalf("UpdateConfigText: %v", err)
		}
		got, err := ParseConfig("updated.toml", upd)
		if err != nil || !sameConfig(&got, &next) {
			t.Fatalf("updated text reads back as %+v, %v; want %+v\n%s", got, err, next, upd)
		}
	})
}
