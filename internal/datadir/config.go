package datadir

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/BurntSushi/toml"

	"github.com/grits-cdn/grits/tree"
)

// ConfigFile is the node's configuration in its data directory: TOML,
// edited by hand, its keys the json tags of Config.
const ConfigFile = "gritsd.toml"

// legacyConfigFile is what data directories held before gritsd.toml;
// Open migrates it and keeps it as legacyConfigFile+".bak".
const legacyConfigFile = "config.json"

// ServeConfig holds the settings of gritsd serve that were flags only
// before gritsd.toml. Embedded in Config: its fields are Config's.
type ServeConfig struct {
	TLSCert        string   `json:"tls_cert,omitempty"`
	TLSKey         string   `json:"tls_key,omitempty"`
	ACMEDomains    []string `json:"acme_domains,omitempty"`
	ACMEEmail      string   `json:"acme_email,omitempty"`
	RateLimit      float64  `json:"rate_limit,omitempty"`
	TrustedProxies []string `json:"trusted_proxies,omitempty"`
	// HTTP2 picks the HTTP/2 server: HTTP2Grits (default) or HTTP2Go.
	HTTP2 string `json:"http2,omitempty"`
	// What a slow client may hold: see gateway.ServerConfig.
	HTTPWriteTimeout Duration `json:"http_write_timeout,omitzero"`
	HTTPBodyTimeout  Duration `json:"http_body_timeout,omitzero"`
	HTTPBodyMinRate  int64    `json:"http_body_min_rate,omitempty"`
	// Grits1RateLimit is grits/1 requests per second per client that is
	// not a member (0: the default, negative: none).
	Grits1RateLimit float64 `json:"grits1_rate_limit,omitempty"`

	Upstream     string `json:"upstream,omitempty"`
	UpstreamHost string `json:"upstream_host,omitempty"`
	InjectSW     bool   `json:"inject_sw,omitempty"`
	// InjectSWTree adds the registration script to the HTML pages the
	// origin serves from the tree.
	InjectSWTree  bool     `json:"inject_sw_tree,omitempty"`
	ProxyPrefixes []string `json:"proxy_prefixes,omitempty"`
	Watch         string   `json:"watch,omitempty"`
	WatchQuiet    Duration `json:"watch_quiet,omitzero"`

	SWScope string   `json:"sw_scope,omitempty"`
	SWPaths []string `json:"sw_paths,omitempty"`
	// SWNavigate unset (nil): pages from the worker for a static site,
	// from the origin behind an upstream app.
	SWNavigate *bool `json:"sw_navigate,omitempty"`
	// MediaHosts are other names the tree is served under,
	// "https://HOST[:PORT]=/TREE/PATH" (sw.ParseHost).
	MediaHosts []string `json:"media_hosts,omitempty"`
	SWCacheMB  int64    `json:"sw_cache_mb,omitempty"`
	// SWRootCheck is how long an open page may read an old root before
	// its worker asks the origin for a newer one.
	SWRootCheck Duration `json:"sw_root_check,omitzero"`

	LogLevel  string `json:"log_level,omitempty"`
	LogFormat string `json:"log_format,omitempty"`

	// The tree as a file system (gritsd serve --mount).
	Mount         string   `json:"mount,omitempty"`
	MountAt       string   `json:"mount_at,omitempty"`
	MountQuiet    Duration `json:"mount_quiet,omitzero"`
	MountOwner    string   `json:"mount_owner,omitempty"`
	Publish       string   `json:"publish,omitempty"`
	NoReadDirPlus bool     `json:"no_readdirplus,omitempty"`
}

// Values of ServeConfig.HTTP2.
const (
	HTTP2Grits = "grits"
	HTTP2Go    = "go"
)

// DefaultConfig is the configuration of a new volunteer: what a key left
// out of gritsd.toml means.
func DefaultConfig() Config {
	return Config{Version: configVersion, Role: RoleVolunteer, RootTTL: Duration{DefaultRootTTL},
		RetainRoots: DefaultRetainRoots, CacheQuota: DefaultCacheQuota, ChunkSize: tree.DefaultChunkSize}
}

// KeyError is a setting's invalid value.
type KeyError struct {
	Key string
	Err error
}

func (e *KeyError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *KeyError) Unwrap() error { return e.Err }

func keyErrorf(key, format string, args ...any) error {
	return &KeyError{Key: key, Err: fmt.Errorf(format, args...)}
}

// ConfigError is an error in a configuration file, at a line when one is
// known.
type ConfigError struct {
	File string
	Line int // 1-based; 0 when unknown
	Key  string
	Err  error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// configFields maps each key of gritsd.toml to its field in c: the json
// tag of every exported field, embedded structs flattened.
func configFields(c *Config) map[string]reflect.Value {
	out := map[string]reflect.Value{}
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(v.Field(i))
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			out[name] = v.Field(i)
		}
	}
	walk(reflect.ValueOf(c).Elem())
	return out
}

// ConfigKeys lists the keys Config has, sorted.
func ConfigKeys() []string {
	var c Config
	var keys []string
	for k := range configFields(&c) {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// setTOML stores a decoded TOML value into a field, checking its type.
func setTOML(f reflect.Value, v any) error {
	if f.Addr().Type().Implements(textUnmarshaler) {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want a quoted string, got %s", tomlKind(v))
		}
		if s == "" {
			f.SetZero() // "": not set, the default applies
			return nil
		}
		return f.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s))
	}
	switch f.Kind() {
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want a quoted string, got %s", tomlKind(v))
		}
		f.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("want true or false, got %s", tomlKind(v))
		}
		f.SetBool(b)
	case reflect.Pointer:
		// An optional boolean: unset (nil) has a default of its own.
		if f.Type().Elem().Kind() != reflect.Bool {
			return fmt.Errorf("unsupported setting type %v", f.Type())
		}
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("want true or false, got %s", tomlKind(v))
		}
		f.Set(reflect.ValueOf(&b))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(int64)
		if !ok {
			return fmt.Errorf("want an integer, got %s", tomlKind(v))
		}
		if f.OverflowInt(n) {
			return fmt.Errorf("%d is out of range", n)
		}
		f.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(int64)
		if !ok {
			return fmt.Errorf("want an integer, got %s", tomlKind(v))
		}
		if n < 0 || f.OverflowUint(uint64(n)) {
			return fmt.Errorf("%d is out of range", n)
		}
		f.SetUint(uint64(n))
	case reflect.Float32, reflect.Float64:
		switch n := v.(type) {
		case float64:
			f.SetFloat(n)
		case int64:
			f.SetFloat(float64(n))
		default:
			return fmt.Errorf("want a number, got %s", tomlKind(v))
		}
	case reflect.Slice:
		if f.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported setting type %v", f.Type())
		}
		arr, ok := v.([]any)
		if !ok {
			return fmt.Errorf(`want a list of strings like ["a", "b"], got %s`, tomlKind(v))
		}
		s := reflect.MakeSlice(f.Type(), 0, len(arr))
		for _, e := range arr {
			str, ok := e.(string)
			if !ok {
				return fmt.Errorf("want a list of strings, it holds %s", tomlKind(e))
			}
			s = reflect.Append(s, reflect.ValueOf(str).Convert(f.Type().Elem()))
		}
		f.Set(s)
	default:
		return fmt.Errorf("unsupported setting type %v", f.Type())
	}
	return nil
}

func tomlKind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("a %T", v)
}

// Set sets a setting from its text form, as a flag gives it: lists are
// comma-separated.
func (c *Config) Set(key, text string) error {
	f, ok := configFields(c)[key]
	if !ok {
		return fmt.Errorf("%s: unknown setting", key)
	}
	var v any
	switch {
	case f.Addr().Type().Implements(textUnmarshaler), f.Kind() == reflect.String:
		v = text
	case f.Kind() == reflect.Bool, f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Bool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return keyErrorf(key, "want true or false, got %q", text)
		}
		v = b
	case f.CanInt() || f.CanUint():
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return keyErrorf(key, "want an integer, got %q", text)
		}
		v = n
	case f.CanFloat():
		n, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return keyErrorf(key, "want a number, got %q", text)
		}
		v = n
	case f.Kind() == reflect.Slice:
		var list []any
		for _, s := range strings.Split(text, ",") {
			if s = strings.TrimSpace(s); s != "" {
				list = append(list, s)
			}
		}
		v = list
	}
	if err := setTOML(f, v); err != nil {
		return &KeyError{Key: key, Err: err}
	}
	return nil
}

// Text returns a setting's value in text form (one string per element of
// a list), or nil when it is unset (zero: the default applies).
func (c *Config) Text(key string) []string {
	f, ok := configFields(c)[key]
	if !ok || f.IsZero() {
		return nil
	}
	if m, ok := f.Interface().(encoding.TextMarshaler); ok {
		b, err := m.MarshalText()
		if err != nil {
			return nil
		}
		return []string{string(b)}
	}
	switch {
	case f.Kind() == reflect.Slice:
		var out []string
		for i := range f.Len() {
			out = append(out, f.Index(i).String())
		}
		return out
	case f.CanFloat():
		return []string{strconv.FormatFloat(f.Float(), 'g', -1, 64)}
	case f.Kind() == reflect.Pointer:
		return []string{fmt.Sprint(f.Elem().Interface())}
	}
	return []string{fmt.Sprint(f.Interface())}
}

// Equal reports whether key has the same value in c and o (an empty list
// is the same as none).
func (c *Config) Equal(o *Config, key string) bool {
	a, b := configFields(c)[key], configFields(o)[key]
	if !a.IsValid() || !b.IsValid() {
		return false
	}
	return sameValue(a, b)
}

func sameValue(a, b reflect.Value) bool {
	if a.Kind() == reflect.Slice && a.Len() == 0 && b.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// sameConfig reports whether every setting of a and b is the same.
func sameConfig(a, b *Config) bool {
	fa, fb := configFields(a), configFields(b)
	for k, v := range fa {
		if !sameValue(v, fb[k]) {
			return false
		}
	}
	return true
}

// ParseConfig reads gritsd.toml's text (name is the file, for messages):
// keys left out take their defaults; an unknown key, a value of the wrong
// type or an invalid one is an error naming the key and its line.
func ParseConfig(name string, src []byte) (Config, error) {
	cfg := DefaultConfig()
	var raw map[string]any
	md, err := toml.Decode(string(src), &raw)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return cfg, &ConfigError{File: name, Line: pe.Position.Line, Err: fmt.Errorf("%s", pe.Message)}
		}
		return cfg, &ConfigError{File: name, Err: err}
	}
	fields := configFields(&cfg)
	var errs []error
	for _, k := range md.Keys() {
		if len(k) != 1 {
			continue // inside a table, which is reported itself
		}
		key := k[0]
		line := KeyLine(src, key)
		f, ok := fields[key]
		if !ok {
			msg := "unknown setting"
			if _, table := raw[key].(map[string]any); table {
				msg = "unknown setting (gritsd.toml has no tables: every setting is at the top level)"
			}
			if s := suggestKey(key); s != "" {
				msg += "; did you mean " + s + "?"
			}
			errs = append(errs, &ConfigError{File: name, Line: line, Key: key, Err: errors.New(msg)})
			continue
		}
		if err := setTOML(f, raw[key]); err != nil {
			errs = append(errs, &ConfigError{File: name, Line: line, Key: key, Err: err})
		}
	}
	if len(errs) > 0 {
		return cfg, errors.Join(errs...)
	}
	if err := cfg.Validate(); err != nil {
		ce := &ConfigError{File: name, Err: err}
		var ke *KeyError
		if errors.As(err, &ke) {
			ce.Key, ce.Err, ce.Line = ke.Key, ke.Err, KeyLine(src, ke.Key)
		}
		return cfg, ce
	}
	return cfg, nil
}

// KeyLine finds the line where a top-level key is set (0 if it is not):
// the file has no tables, so the first assignment before any [table]
// header is the one, or the header of a table of that name.
func KeyLine(src []byte, key string) int {
	inTable := false
	for i, line := range strings.Split(string(src), "\n") {
		l := strings.TrimSpace(line)
		if strings.HasPrefix(l, "[") {
			inTable = true
			name := strings.Trim(l, "[] \t")
			if name == key || strings.Trim(name, `"'`) == key {
				return i + 1
			}
			continue
		}
		if inTable {
			continue
		}
		for _, q := range []string{"", `"`, "'"} {
			rest, ok := strings.CutPrefix(l, q+key+q)
			if !ok {
				continue
			}
			rest = strings.TrimLeft(rest, " \t")
			if strings.HasPrefix(rest, "=") || strings.HasPrefix(rest, ".") {
				return i + 1
			}
		}
	}
	return 0
}

// suggestKey names the setting an unknown key probably meant: a flag's
// name, dashes for underscores, or a near miss.
func suggestKey(key string) string {
	keys := ConfigKeys()
	for _, s := range Settings() {
		if s.Flag != "" && strings.TrimLeft(key, "-") == s.Flag {
			return s.Key
		}
	}
	if k := strings.ReplaceAll(key, "-", "_"); slices.Contains(keys, k) {
		return k
	}
	best, bestD := "", 3
	for _, k := range keys {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// tomlValue encodes a setting's value as TOML (the right-hand side of
// key = value).
func tomlValue(key string, f reflect.Value) (string, error) {
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(map[string]any{key: f.Interface()}); err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	_, v, ok := strings.Cut(strings.TrimSpace(b.String()), " = ")
	if !ok {
		return "", fmt.Errorf("%s: cannot encode %v", key, f.Interface())
	}
	return v, nil
}

// isDefault reports whether a setting is left at its default: zero, or
// what DefaultConfig says.
func isDefault(key string, f reflect.Value) bool {
	if f.IsZero() {
		return true
	}
	d := DefaultConfig()
	df, ok := configFields(&d)[key]
	return ok && sameValue(f, df)
}

// alwaysWritten are the keys written even at their default: they say
// what the node is.
var alwaysWritten = map[string]bool{"version": true, "role": true}

const configHeader = `# gritsd.toml: the configuration of one grits node.
#
# gritsd reads it when a command starts; "gritsd config check" validates it
# and prints the effective settings; SIGHUP to a running "gritsd serve"
# re-reads it: settings marked "Reloads on SIGHUP" apply at once, the
# others at the next restart (the log says which). A flag of gritsd serve
# overrides the setting it names. Each setting is listed with its default:
# remove the "# " in front of a line to change it.
#
# No secret is kept here: node.key, site.key, swarm.key, swarm.keys and
# ca.key are files of their own beside it, readable by their owner alone
# (mode 0600); gritsd refuses to start if others can read them.
`

// FormatConfig writes c as a complete commented gritsd.toml: every
// setting documented, those left at their default commented out.
func FormatConfig(c Config) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(configHeader)
	fields := configFields(&c)
	group := ""
	for _, s := range Settings() {
		f, ok := fields[s.Key]
		if !ok {
			return nil, fmt.Errorf("setting %s has no field in Config", s.Key)
		}
		if s.Group != group {
			group = s.Group
			fmt.Fprintf(&b, "\n# ==== %s ====\n", group)
		}
		b.WriteString("\n")
		writeComment(&b, s.Doc)
		var notes []string
		if s.Flag != "" {
			notes = append(notes, "Flag: --"+s.Flag+".")
		}
		if s.Reload {
			notes = append(notes, "Reloads on SIGHUP.")
		}
		if len(notes) > 0 {
			b.WriteString("# " + strings.Join(notes, " ") + "\n")
		}
		if isDefault(s.Key, f) && !alwaysWritten[s.Key] {
			fmt.Fprintf(&b, "# %s = %s\n", s.Key, s.Default)
			continue
		}
		v, err := tomlValue(s.Key, f)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s = %s\n", s.Key, v)
	}
	return b.Bytes(), nil
}

// writeComment wraps text into # lines of about 76 columns.
func writeComment(b *bytes.Buffer, text string) {
	line := "#"
	for _, w := range strings.Fields(text) {
		if len(line)+1+len(w) > 76 && line != "#" {
			b.WriteString(line + "\n")
			line = "#"
		}
		line += " " + w
	}
	b.WriteString(line + "\n")
}

// UpdateConfigText rewrites the settings that differ between old and new
// in gritsd.toml's text src, keeping everything else (comments, order,
// what a person wrote) as it is: a set line is replaced, a commented-out
// one uncommented, a missing one appended. If the result would not read
// back as new (a layout this simple editor does not understand), the
// whole file is written afresh from FormatConfig and rewritten is true.
func UpdateConfigText(name string, src []byte, old, new Config) (out []byte, rewritten bool, err error) {
	lines := strings.Split(string(src), "\n")
	oldF, newF := configFields(&old), configFields(&new)
	for _, s := range Settings() {
		if sameValue(oldF[s.Key], newF[s.Key]) {
			continue
		}
		repl := "# " + s.Key + " = " + s.Default
		if !isDefault(s.Key, newF[s.Key]) || alwaysWritten[s.Key] {
			v, err := tomlValue(s.Key, newF[s.Key])
			if err != nil {
				return nil, false, err
			}
			repl = s.Key + " = " + v
		}
		lines = replaceSetting(lines, s.Key, repl)
	}
	out = []byte(strings.Join(lines, "\n"))
	if got, err := ParseConfig(name, out); err == nil && sameConfig(&got, &new) {
		return out, false, nil
	}
	out, err = FormatConfig(new)
	return out, true, err
}

func replaceSetting(lines []string, key, repl string) []string {
	if n := KeyLine([]byte(strings.Join(lines, "\n")), key); n > 0 {
		i := n - 1
		end := i + 1
		// A list may span lines: up to the line that closes it.
		if depth := bracketDepth(lines[i]); depth > 0 {
			for end < len(lines) && depth > 0 {
				depth += bracketDepth(lines[end])
				end++
			}
		}
		return slices.Concat(lines[:i], []string{repl}, lines[end:])
	}
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if c, ok := strings.CutPrefix(t, "#"); ok {
			c = strings.TrimSpace(c)
			if rest, ok := strings.CutPrefix(c, key); ok && strings.HasPrefix(strings.TrimSpace(rest), "=") {
				lines[i] = repl
				return lines
			}
		}
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return append(lines, repl, "")
}

// bracketDepth counts [ minus ] outside strings and comments.
func bracketDepth(l string) int {
	d := 0
	var quote rune
	for _, r := range l {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		case r == '#':
			return d
		case r == '[':
			d++
		case r == ']':
			d--
		}
	}
	return d
}

// validate checks the settings of gritsd serve that need no other
// package to check.
func (s *ServeConfig) validate(role string) error {
	switch {
	case s.HTTP2 != "" && s.HTTP2 != HTTP2Grits && s.HTTP2 != HTTP2Go:
		return keyErrorf("http2", "%q: want %q or %q", s.HTTP2, HTTP2Grits, HTTP2Go)
	case s.LogFormat != "" && s.LogFormat != "auto" && s.LogFormat != "text" && s.LogFormat != "json":
		return keyErrorf("log_format", "%q: want auto, text or json", s.LogFormat)
	case (s.TLSCert == "") != (s.TLSKey == ""):
		return keyErrorf("tls_key", "tls_cert and tls_key go together")
	case s.TLSCert != "" && len(s.ACMEDomains) > 0:
		return keyErrorf("acme_domains", "tls_cert and acme_domains exclude each other")
	case s.WatchQuiet.Duration < 0:
		return keyErrorf("watch_quiet", "%v: must not be negative", s.WatchQuiet)
	case s.SWCacheMB < 0:
		return keyErrorf("sw_cache_mb", "%d: must not be negative", s.SWCacheMB)
	case s.MountQuiet.Duration < 0:
		return keyErrorf("mount_quiet", "%v: must not be negative", s.MountQuiet)
	case s.Publish != "" && s.Publish != "world-readable" && s.Publish != "all":
		return keyErrorf("publish", "%q: want world-readable or all", s.Publish)
	}
	if s.MountAt != "" {
		if _, err := tree.ParsePath(s.MountAt); err != nil {
			return keyErrorf("mount_at", "%v", err)
		}
	}
	if s.LogLevel != "" {
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(s.LogLevel)); err != nil {
			return keyErrorf("log_level", "%q: want debug, info, warn or error", s.LogLevel)
		}
	}
	if role != RoleOrigin {
		for key, set := range map[string]bool{"upstream": s.Upstream != "", "watch": s.Watch != "", "inject_sw": s.InjectSW, "inject_sw_tree": s.InjectSWTree,
			"proxy_prefixes": len(s.ProxyPrefixes) > 0} {
			if set {
				return keyErrorf(key, "only an origin has it (this node is a %s)", role)
			}
		}
	}
	return nil
}

// LoadConfig reads the configuration of the data directory at path. A
// directory from before gritsd.toml has config.json: it is migrated (the
// settings written to a new commented gritsd.toml, config.json renamed
// config.json.bak) when no other gritsd command holds the directory's
// lock, and read as it is otherwise.
func LoadConfig(path string, logger *slog.Logger) (Config, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	name := filepath.Join(path, ConfigFile)
	src, err := os.ReadFile(name)
	if err == nil {
		cfg, err := ParseConfig(name, src)
		if err != nil {
			return cfg, err
		}
		// A migration that crashed between its two steps.
		if _, err := os.Stat(filepath.Join(path, legacyConfigFile)); err == nil {
			moveLegacy(path, logger)
		}
		return cfg, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return Config{}, fmt.Errorf("open data directory: %w", err)
	}
	legacy := filepath.Join(path, legacyConfigFile)
	raw, err := os.ReadFile(legacy)
	if errors.Is(err, os.ErrNotExist) {
		return Config{}, fmt.Errorf("%s: %w (run gritsd init first, or pass --data)", path, ErrNotInitialized)
	}
	if err != nil {
		return Config{}, fmt.Errorf("open data directory: %w", err)
	}
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return Config{}, fmt.Errorf("%s: %w", legacy, err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", legacy, err)
	}
	if err := migrateConfig(path, cfg, logger); err != nil {
		logger.Warn("config.json not migrated to gritsd.toml; read as it is", "dir", path, "err", err)
	}
	return cfg, nil
}

// migrateConfig writes gritsd.toml from a config.json's settings and
// then moves config.json aside, under the directory's lock.
func migrateConfig(path string, cfg Config, logger *slog.Logger) error {
	lock, err := os.OpenFile(filepath.Join(path, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("%w (the command holding it migrates it)", ErrLocked)
	}
	if _, err := os.Stat(filepath.Join(path, ConfigFile)); err == nil {
		return nil // another command did it first
	}
	b, err := FormatConfig(cfg)
	if err != nil {
		return err
	}
	d := &Dir{Path: path, logger: logger}
	if err := d.WriteFile(ConfigFile, b, 0o644); err != nil {
		return err
	}
	moveLegacy(path, logger)
	return nil
}

func moveLegacy(path string, logger *slog.Logger) {
	from, to := filepath.Join(path, legacyConfigFile), filepath.Join(path, legacyConfigFile+".bak")
	if err := os.Rename(from, to); err != nil && !errors.Is(err, os.ErrNotExist) {
		logger.Warn("could not move the old config aside", "file", from, "err", err)
		return
	}
	if err := syncDir(path); err != nil {
		logger.Warn("could not sync the data directory", "dir", path, "err", err)
	}
	// Warn: a one-time change to the directory the operator should see.
	logger.Warn("migrated config.json to gritsd.toml; the old file is kept", "config", filepath.Join(path, ConfigFile), "backup", to)
}

// ErrSecretExposed: a secret file of the data directory can be read by
// others than its owner.
var ErrSecretExposed = errors.New("secret file readable by others")

// secretFiles are the data directory's secrets; the acme directory holds
// the ACME account key and the certificates' private keys.
var secretFiles = []string{"node.key", "site.key", "swarm.key", "swarm.keys", "ca.key", "acme"}

// CheckSecrets refuses a data directory whose secrets group or others can
// access: a key that leaked to another local user is as good as lost,
// and saying so early beats finding out.
func CheckSecrets(path string) error {
	for _, name := range secretFiles {
		p := filepath.Join(path, name)
		err := filepath.WalkDir(p, func(f string, de fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			fi, err := de.Info()
			if err != nil {
				return err
			}
			return CheckSecretFile(f, fi)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// CheckSecretFile refuses a secret whose mode gives group or others any
// access.
func CheckSecretFile(path string, fi fs.FileInfo) error {
	if fi.Mode()&0o077 == 0 {
		return nil
	}
	want := "600"
	if fi.IsDir() {
		want = "700"
	}
	return fmt.Errorf("%s: mode %04o lets group or others read it; secrets must be readable by their owner alone (chmod %s %s): %w",
		path, fi.Mode().Perm(), want, path, ErrSecretExposed)
}

// TOMLValue is a setting's value in c as TOML text.
func TOMLValue(c *Config, key string) (string, error) {
	f, ok := configFields(c)[key]
	if !ok {
		return "", fmt.Errorf("%s: unknown setting", key)
	}
	return tomlValue(key, f)
}

// CheckTLSKey refuses a TLS private key every local user can read. Group
// access is allowed: Debian's ssl-cert group and certbot's setups share
// keys with a service that way.
func CheckTLSKey(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode()&0o004 != 0 {
		return fmt.Errorf("%s: mode %04o lets every user read this private key (chmod o-r %s): %w", path, fi.Mode().Perm(), path, ErrSecretExposed)
	}
	return nil
}

// CopySetting sets key in c to its value in o.
func (c *Config) CopySetting(o *Config, key string) {
	dst, src := configFields(c)[key], configFields(o)[key]
	if dst.IsValid() && src.IsValid() {
		dst.Set(src)
	}
}
