// Package datadir owns a node's data directory: its configuration, keys,
// block store, root log and the lock that keeps two writers apart.
//
// Layout (all paths relative to the directory):
//
//	gritsd.toml   role and settings, edited by hand (see Config, Settings)
//	node.key      the node's ed25519 key, PKCS#8 PEM, 0600
//	site.key      origin only: the site's ed25519 signing key, PKCS#8 PEM, 0600
//	swarm.key     origin only: the gossip encryption secret, 0600
//	swarm.keys    the swarm's gossip keys and ban list, 0600
//	ca.key        the development CA's private key, 0600
//	blocks/       the block store (see package blockstore)
//	roots.log     every signed root this node accepted (see tree.Log)
//	import/       per-source state that lets re-imports skip unchanged files
//	offload.ledger origin only: what audits showed of each storage node (package offload)
//	lock          flock(2) target for commands that write
package datadir

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
)

// Roles a node can have.
const (
	RoleOrigin    = "origin"
	RoleVolunteer = "volunteer"
	RoleStorage   = "storage"
)

// Defaults written into a new config.
const (
	DefaultRootTTL     = 7 * 24 * time.Hour
	DefaultRetainRoots = 10
	DefaultCacheQuota  = 10 << 30
	configVersion      = 1
)

// Errors callers branch on.
var (
	ErrNotInitialized = errors.New("data directory is not initialized")
	ErrExists         = errors.New("data directory is already initialized")
	ErrNotOrigin      = errors.New("this data directory is not an origin's")
	ErrLocked         = errors.New("data directory is locked by another gritsd command")
)

// Duration is a Go duration written as text ("168h", "2s") in the
// config file.
type Duration struct{ time.Duration }

func (d Duration) MarshalText() ([]byte, error) {
	s := d.String()
	// "168h0m0s" reads better as "168h".
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return []byte(s), nil
}

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// Config is gritsd.toml (see settings.go for what each key does). Its
// keys are the fields' json tags, which also read the config.json of
// older data directories. A new setting needs a field here and an entry
// in Settings.
type Config struct {
	Version int    `json:"version"`
	Role    string `json:"role"`
	// SiteKey is the site's public key: the origin's own, or the one a
	// volunteer was given when it joined. Zero until known.
	SiteKey tree.PublicKey `json:"site_key"`
	// RootTTL is how long a root the origin signs stays valid.
	RootTTL Duration `json:"root_ttl"`
	// RetainRoots is how many of the newest roots gc keeps complete.
	RetainRoots int `json:"retain_roots"`
	// CacheQuota bounds cached (unpinned) blocks, in bytes.
	CacheQuota int64 `json:"cache_quota_bytes"`
	// ChunkSize for imported files.
	ChunkSize uint32 `json:"chunk_size"`

	// Swarm settings (gritsd serve; flags override them). Empty means
	// the default.
	Listen    string `json:"listen,omitempty"`     // grits/1 (UDP), default ":7433"
	Gossip    string `json:"gossip,omitempty"`     // memberlist (TCP+UDP), default ":7434"
	Advertise string `json:"advertise,omitempty"`  // host other nodes reach this one at
	PublicURL string `json:"public_url,omitempty"` // HTTPS base URL for browsers
	// HTTPSListen is where browsers are served (TCP and UDP), default
	// ":8443"; "off" disables.
	HTTPSListen string `json:"https_listen,omitempty"`
	// AdminListen is the admin listener's TCP address (metrics, health,
	// dashboard), default loopback at the listen port + 2; "off"
	// disables it.
	AdminListen string `json:"admin_listen,omitempty"`
	// OriginAddr and Seeds are written by gritsd join: where the origin
	// answers grits/1, and gossip addresses to join the swarm through.
	OriginAddr string   `json:"origin_addr,omitempty"`
	Seeds      []string `json:"seeds,omitempty"`
	// GossipProfile is lan (default), wan or local (tests).
	GossipProfile string `json:"gossip_profile,omitempty"`
	// Replication is how many home nodes each block has (default 2).
	Replication int `json:"replication,omitempty"`
	// Pins are the subtrees a storage node keeps (default "/").
	Pins []string `json:"pins,omitempty"`
	// CertTTL is how long node certificates the origin issues last.
	CertTTL Duration `json:"cert_ttl,omitzero"`
	// ForgetMembersAfter is how long a member not seen alive is still
	// re-joined and kept in members.json (default 72h).
	ForgetMembersAfter Duration `json:"forget_members_after,omitzero"`
	// WarmMaxBytes and WarmRateBytes bound a volunteer's cache warming
	// per new root (negative WarmMaxBytes disables it).
	WarmMaxBytes  int64 `json:"warm_max_bytes,omitempty"`
	WarmRateBytes int64 `json:"warm_rate_bytes,omitempty"`
	// PinRateBytes bounds a storage node's sync bandwidth (0: unlimited).
	PinRateBytes int64 `json:"pin_rate_bytes,omitempty"`

	// Offload (origin): StoreMax bounds the file content kept on this
	// disk, in bytes (0: keep everything); content past it leaves once
	// OffloadReplicas (default 2) audited storage nodes hold it. Each
	// storage node is audited every AuditInterval (default 1m), an audit
	// timing out after AuditTimeout (default 30s); one gone longer than
	// OffloadGrace (default 6h) stops counting as a copy.
	StoreMax        int64    `json:"store_max,omitempty"`
	OffloadReplicas int      `json:"offload_replicas,omitempty"`
	AuditInterval   Duration `json:"audit_interval,omitzero"`
	AuditTimeout    Duration `json:"audit_timeout,omitzero"`
	OffloadGrace    Duration `json:"offload_grace,omitzero"`

	ServeConfig
}

// Validate checks a loaded or edited config. Its errors are *KeyError,
// naming the setting.
func (c *Config) Validate() error {
	switch {
	case c.Version != configVersion:
		return keyErrorf("version", "%d, this gritsd understands %d", c.Version, configVersion)
	case c.Role != RoleOrigin && c.Role != RoleVolunteer && c.Role != RoleStorage:
		return keyErrorf("role", "%q: want origin, volunteer or storage", c.Role)
	case c.Role == RoleOrigin && c.SiteKey.IsZero():
		return keyErrorf("site_key", "an origin needs its site key")
	case c.RootTTL.Duration < time.Minute:
		return keyErrorf("root_ttl", "%v: at least 1m", c.RootTTL)
	case c.RetainRoots < 1:
		return keyErrorf("retain_roots", "%d: at least 1", c.RetainRoots)
	case c.ChunkSize < tree.MinChunkSize || c.ChunkSize > tree.MaxChunkSize:
		return keyErrorf("chunk_size", "%d: must be %d..%d", c.ChunkSize, tree.MinChunkSize, tree.MaxChunkSize)
	case c.Replication < 0 || c.Replication > 16:
		return keyErrorf("replication", "%d: must be 1..16", c.Replication)
	case c.GossipProfile != "" && c.GossipProfile != "lan" && c.GossipProfile != "wan" && c.GossipProfile != "local":
		return keyErrorf("gossip_profile", "%q: want lan, wan or local", c.GossipProfile)
	case c.ForgetMembersAfter.Duration != 0 && c.ForgetMembersAfter.Duration < time.Minute:
		return keyErrorf("forget_members_after", "%v: at least 1m (or leave it out for 72h)", c.ForgetMembersAfter)
	case c.StoreMax < 0:
		return keyErrorf("store_max", "%d: 0 (keep everything) or a byte count", c.StoreMax)
	case c.OffloadReplicas < 0 || c.OffloadReplicas > 16:
		return keyErrorf("offload_replicas", "%d: must be 1..16", c.OffloadReplicas)
	case c.AuditInterval.Duration < 0:
		return keyErrorf("audit_interval", "%v: must not be negative", c.AuditInterval)
	case c.AuditTimeout.Duration < 0:
		return keyErrorf("audit_timeout", "%v: must not be negative", c.AuditTimeout)
	case c.OffloadGrace.Duration < 0:
		return keyErrorf("offload_grace", "%v: must not be negative", c.OffloadGrace)
	}
	for _, p := range c.Pins {
		if _, err := tree.ParsePath(p); err != nil {
			return &KeyError{Key: "pins", Err: err}
		}
	}
	return c.ServeConfig.validate(c.Role)
}

// SaveConfig writes d.Config to gritsd.toml atomically, changing only
// the lines of the settings that changed, so what a person wrote there
// stays. Should the file's layout defeat that, it is written afresh and
// the previous text kept as gritsd.toml.bak.
func (d *Dir) SaveConfig() error {
	if err := d.Config.Validate(); err != nil {
		return err
	}
	src, err := d.ReadFile(ConfigFile)
	if errors.Is(err, os.ErrNotExist) {
		b, err := FormatConfig(d.Config)
		if err != nil {
			return err
		}
		return d.WriteFile(ConfigFile, b, 0o644)
	}
	if err != nil {
		return err
	}
	old, err := ParseConfig(d.path(ConfigFile), src)
	if err != nil {
		old = DefaultConfig()
	}
	out, rewritten, err := UpdateConfigText(d.path(ConfigFile), src, old, d.Config)
	if err != nil {
		return err
	}
	if rewritten {
		if err := d.WriteFile(ConfigFile+".bak", src, 0o644); err != nil {
			return err
		}
		d.logger.Warn("rewrote the config file; the previous one is kept", "file", d.path(ConfigFile), "backup", d.path(ConfigFile+".bak"))
	}
	return d.WriteFile(ConfigFile, out, 0o644)
}

// ReadFile reads a file of the data directory.
func (d *Dir) ReadFile(name string) ([]byte, error) { return os.ReadFile(d.path(name)) }

// WriteFile replaces a file of the data directory atomically and
// durably: a crash leaves the old or the new content, never a mix.
func (d *Dir) WriteFile(name string, data []byte, perm os.FileMode) error {
	tmp := d.path(name + ".tmp")
	os.Remove(tmp)
	if err := writeFileSync(tmp, data, perm); err != nil {
		return err
	}
	if err := os.Rename(tmp, d.path(name)); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return syncDir(d.Path)
}

// FilePath is the path of a file in the data directory.
func (d *Dir) FilePath(name string) string { return d.path(name) }

func syncDir(p string) error {
	dir, err := os.Open(p)
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// DefaultDir is where a data directory lives when neither --data nor
// GRITS_DATA says: $XDG_DATA_HOME/grits, else ~/.local/share/grits.
func DefaultDir(getenv func(string) string) (string, error) {
	if d := getenv("GRITS_DATA"); d != "" {
		return d, nil
	}
	if d := getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "grits"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no --data, GRITS_DATA or home directory: %w", err)
	}
	return filepath.Join(home, ".local", "share", "grits"), nil
}

// Dir is an open data directory.
type Dir struct {
	Path    string
	Config  Config
	NodeKey ed25519.PrivateKey
	// SiteKey is the site's private key on an origin, nil elsewhere.
	SiteKey ed25519.PrivateKey
	Store   *blockstore.Disk
	Log     *tree.Log
	logger  *slog.Logger
	lock    *os.File
}

func (d *Dir) path(name string) string { return filepath.Join(d.Path, name) }

// Init creates a new data directory. It refuses to touch one that exists
// and is not empty, so running init twice never replaces keys.
func Init(ctx context.Context, path string, origin bool, logger *slog.Logger) (*Dir, error) {
	for _, f := range []string{ConfigFile, legacyConfigFile} {
		if _, err := os.Stat(filepath.Join(path, f)); err == nil {
			return nil, fmt.Errorf("%s: %w", path, ErrExists)
		}
	}
	if des, err := os.ReadDir(path); err == nil && len(des) > 0 {
		return nil, fmt.Errorf("%s exists and is not empty; choose an empty or new directory", path)
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	cfg := DefaultConfig()
	if _, err := newKey(filepath.Join(path, "node.key")); err != nil {
		return nil, err
	}
	if origin {
		cfg.Role = RoleOrigin
		site, err := newKey(filepath.Join(path, "site.key"))
		if err != nil {
			return nil, err
		}
		cfg.SiteKey = tree.PublicKeyOf(site)
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, fmt.Errorf("init: %w", err)
		}
		if err := writeFileSync(filepath.Join(path, "swarm.key"), []byte(base64.StdEncoding.EncodeToString(secret)+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	b, err := FormatConfig(cfg)
	if err != nil {
		return nil, err
	}
	// The config file last: its presence marks a complete init.
	if err := writeFileSync(filepath.Join(path, ConfigFile), b, 0o644); err != nil {
		return nil, err
	}
	return Open(ctx, path, logger)
}

// Open opens an initialized data directory: config, keys, store, log.
func Open(ctx context.Context, path string, logger *slog.Logger) (*Dir, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &Dir{Path: path, logger: logger}
	var err error
	if d.Config, err = LoadConfig(path, logger); err != nil {
		return nil, err
	}
	if err := CheckSecrets(path); err != nil {
		return nil, err
	}
	if d.NodeKey, err = readKey(d.path("node.key")); err != nil {
		return nil, err
	}
	if d.Config.Role == RoleOrigin {
		if d.SiteKey, err = readKey(d.path("site.key")); err != nil {
			return nil, err
		}
		if tree.PublicKeyOf(d.SiteKey) != d.Config.SiteKey {
			return nil, fmt.Errorf("%s does not match site_key in %s", d.path("site.key"), d.path(ConfigFile))
		}
	}
	quota := d.Config.CacheQuota
	if d.Config.Role == RoleOrigin {
		// An origin's cache holds content that left for storage nodes'
		// keeping; only its daemon (package offload) may evict it, never
		// a command running beside it.
		quota = -1
	}
	d.Store, err = blockstore.OpenDisk(ctx, d.path("blocks"), blockstore.DiskConfig{Quota: quota, Logger: logger})
	if err != nil {
		return nil, err
	}
	if err := d.openLog(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// openLog opens the root log for writing when no other gritsd command
// holds the lock (holding it just long enough: opening may cut a torn
// tail), and read-only otherwise, since then the other command may be
// appending at this very moment.
func (d *Dir) openLog(ctx context.Context) error {
	f, err := os.OpenFile(d.path("lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		d.Log, err = tree.ReadLog(ctx, d.path("roots.log"))
		return err
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	d.Log, err = tree.OpenLog(ctx, d.path("roots.log"), d.logger)
	return err
}

// Close releases the lock (if held) and the log.
func (d *Dir) Close() error {
	var errs []error
	if d.Log != nil {
		errs = append(errs, d.Log.Close())
	}
	if d.lock != nil {
		errs = append(errs, d.lock.Close())
		d.lock = nil
	}
	return errors.Join(errs...)
}

// Lock takes the directory's write lock without waiting: two imports, or
// an import and a gc, must never interleave.
func (d *Dir) Lock() error {
	f, err := os.OpenFile(d.path("lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("%s: %w; wait for it to finish", d.Path, ErrLocked)
		}
		return fmt.Errorf("lock: %w", err)
	}
	d.lock = f
	// Re-read the log now that no other command can append: whatever
	// this Dir read before (a long-running serve opened it hours ago) may
	// be stale, and appending to a stale view would sign a second root
	// with an existing sequence number.
	l, err := tree.OpenLog(context.Background(), d.path("roots.log"), d.logger)
	if err != nil {
		d.Unlock()
		return err
	}
	if d.Log != nil {
		d.Log.Close()
	}
	d.Log = l
	return nil
}

// Unlock releases the write lock taken by Lock.
func (d *Dir) Unlock() {
	if d.lock != nil {
		d.lock.Close()
		d.lock = nil
	}
}

// GCFloor is the lowest root seq whose blocks gc kept: roots below it may
// be incomplete on purpose, so fsck and gc skip them. 0 when gc never ran.
func (d *Dir) GCFloor() uint64 {
	b, err := os.ReadFile(d.path("gc-floor"))
	if err != nil {
		return 0
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// SetGCFloor records the floor durably, before gc deletes anything, so
// that a crash in the middle never leaves fsck blaming roots gc was told
// to drop.
func (d *Dir) SetGCFloor(seq uint64) error {
	if seq <= d.GCFloor() {
		return nil
	}
	tmp := d.path("gc-floor.tmp")
	os.Remove(tmp)
	if err := writeFileSync(tmp, []byte(strconv.FormatUint(seq, 10)+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, d.path("gc-floor")); err != nil {
		return fmt.Errorf("gc floor: %w", err)
	}
	dir, err := os.Open(d.Path)
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// Retained returns the newest n roots that gc has not dropped.
func (d *Dir) Retained(n int) []tree.Root {
	return d.RetainedOf(d.Log.Roots(), n)
}

// RetainedOf returns the newest n of roots (a log's, oldest first) that
// gc has not dropped.
func (d *Dir) RetainedOf(roots []tree.Root, n int) []tree.Root {
	floor := d.GCFloor()
	i := 0
	for i < len(roots) && roots[i].Seq < floor {
		i++
	}
	roots = roots[i:]
	if len(roots) > n {
		roots = roots[len(roots)-n:]
	}
	return roots
}

// RequireOrigin returns ErrNotOrigin unless this is an origin.
func (d *Dir) RequireOrigin(what string) error {
	if d.Config.Role != RoleOrigin || d.SiteKey == nil {
		return fmt.Errorf("%s: %w (role %s; create one with gritsd init --origin)", what, ErrNotOrigin, d.Config.Role)
	}
	return nil
}

// ImportStatePath is where the skip-unchanged state of one (source,
// destination) pair lives.
func (d *Dir) ImportStatePath(src, at string) string {
	abs, err := filepath.Abs(src)
	if err != nil {
		abs = src
	}
	h := blockstore.Sum([]byte(abs + "\x00" + at))
	return d.path(filepath.Join("import", h.Hex()[:32]+".json"))
}

// Commit signs a new root for tree hash t as the successor of the
// latest root in the log and appends it. The caller must have made the
// tree's blocks durable first.
func (d *Dir) Commit(ctx context.Context, t blockstore.Hash, now time.Time) (tree.Root, error) {
	if err := d.RequireOrigin("commit"); err != nil {
		return tree.Root{}, err
	}
	r := tree.Root{Seq: 1, Time: now, Expires: now.Add(d.Config.RootTTL.Duration), Tree: t}
	if last, ok := d.Log.Latest(); ok {
		r.Seq = last.Seq + 1
		r.Prev = last.Hash()
		if !r.Time.After(last.Time) {
			// Keep signing times increasing even if the clock stepped back.
			r.Time = last.Time.Add(time.Second)
			r.Expires = r.Time.Add(d.Config.RootTTL.Duration)
		}
	}
	signed, err := tree.SignRoot(d.SiteKey, r)
	if err != nil {
		return tree.Root{}, fmt.Errorf("sign root: %w", err)
	}
	if err := d.Log.Append(ctx, signed); err != nil {
		return tree.Root{}, fmt.Errorf("append root: %w", err)
	}
	return signed, nil
}

func newKey(path string) (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	if err := writeFileSync(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	return priv, nil
}

func readKey(path string) (ed25519.PrivateKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	blk, _ := pem.Decode(raw)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ed25519 key", path)
	}
	return priv, nil
}

func writeFileSync(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
