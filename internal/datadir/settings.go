package datadir

// Setting documents one key of gritsd.toml: what it does, its default,
// the flag that overrides it and whether SIGHUP applies it. Every field
// of Config has exactly one (a test checks), so the commented file gritsd
// init writes, the documentation and `gritsd config check` never drift
// apart from the code.
type Setting struct {
	Key   string // the TOML key: the field's json tag
	Group string // heading in gritsd.toml
	// Default is the default as a TOML value (a computed default is
	// described in Doc).
	Default string
	Doc     string
	// Flag is the gritsd serve flag that overrides the setting ("" if
	// none).
	Flag string
	// Reload: SIGHUP to gritsd serve applies a change without a restart.
	Reload bool
}

// Groups of settings, in the order gritsd.toml lists them.
const (
	groupNode    = "This node"
	groupSwarm   = "Swarm (grits/1 and gossip)"
	groupStore   = "Storage"
	groupOrigin  = "Publishing (origin)"
	groupHTTPS   = "Browsers (HTTPS and HTTP/3)"
	groupWorker  = "Service worker (origin)"
	groupApp     = "The site's app (origin)"
	groupLogging = "Logging"
	groupMount   = "The tree as a file system (gritsd serve --mount)"
)

// Settings lists every setting of gritsd.toml in file order.
func Settings() []Setting {
	return []Setting{
		{Key: "version", Group: groupNode, Default: "1",
			Doc: "Format version of this file. gritsd refuses a version it does not know."},
		{Key: "role", Group: groupNode, Default: `"volunteer"`,
			Doc: "origin (publishes the site), volunteer (caches and serves) or storage (pins the whole tree). Written by gritsd init and gritsd join."},
		{Key: "site_key", Group: groupNode, Default: `""`,
			Doc: "The site's public key; roots signed by any other key are refused. The private key is site.key, on the origin only."},

		{Key: "listen", Group: groupSwarm, Default: `":7433"`, Flag: "listen",
			Doc: "UDP address for grits/1 over QUIC, the protocol between nodes."},
		{Key: "gossip", Group: groupSwarm, Default: `":7434"`, Flag: "gossip",
			Doc: "Address for swarm gossip, TCP and UDP. Default: the listen port + 1."},
		{Key: "advertise", Group: groupSwarm, Default: `""`, Flag: "advertise",
			Doc: "Host name or address other nodes reach this one at. Default: the listen host, else the address gossip picks."},
		{Key: "gossip_profile", Group: groupSwarm, Default: `"lan"`, Flag: "gossip-profile",
			Doc: "Gossip timers: lan, or wan for nodes spread over the Internet (slower probes, more patience before a node is declared dead)."},
		{Key: "admin_listen", Group: groupNode, Default: `"127.0.0.1:7435"`, Flag: "admin",
			Doc: "TCP address of the admin listener: Prometheus /metrics, /healthz, /readyz and the status dashboard. Default: 127.0.0.1 at the listen port + 2. \"off\" disables it. Keep it off the Internet: it has no authentication."},
		{Key: "origin_addr", Group: groupSwarm, Default: `""`,
			Doc: "HOST:PORT where the origin answers grits/1. Written by gritsd join."},
		{Key: "seeds", Group: groupSwarm, Default: "[]", Reload: true,
			Doc: "Gossip addresses (HOST:PORT) to join the swarm through. Written by gritsd join; on SIGHUP a node also joins through seeds it did not know."},
		{Key: "replication", Group: groupSwarm, Default: "2",
			Doc: "How many home nodes each block has. Every node of a swarm must agree."},
		{Key: "cert_ttl", Group: groupSwarm, Default: `"8760h"`,
			Doc: "Origin: how long the node certificates it issues at join last."},
		{Key: "forget_members_after", Group: groupSwarm, Default: `"72h"`,
			Doc: "How long a member not seen alive is still re-joined and kept in members.json (the members this node has seen, which it re-joins after any restart). At least 1m."},
		{Key: "grits1_rate_limit", Group: groupSwarm, Default: "200",
			Doc: "grits/1 requests per second per client address that is not a member (gritsd get, other tools), burst twice that; a GetBlocks counts one per 16 blocks. Over it the client is told to retry later. Members are not limited. Negative: no limit."},

		{Key: "cache_quota_bytes", Group: groupStore, Default: "10737418240",
			Doc: "Bytes of cached (unpinned) blocks this node keeps; the least recently used go first."},
		{Key: "pins", Group: groupStore, Default: "[]",
			Doc: "Storage node: the subtrees it keeps complete. Empty: the whole tree, [\"/\"]."},
		{Key: "warm_max_bytes", Group: groupStore, Default: "268435456",
			Doc: "Volunteer: bytes of a new root's blocks it fetches ahead of requests (those it is home for); negative disables warming."},
		{Key: "warm_rate_bytes", Group: groupStore, Default: "8388608",
			Doc: "Volunteer: bytes per second cache warming may use."},
		{Key: "pin_rate_bytes", Group: groupStore, Default: "0",
			Doc: "Storage node: bytes per second its sync may use; 0 is unlimited."},
		{Key: "retain_roots", Group: groupStore, Default: "10",
			Doc: "How many of the newest roots gritsd gc keeps complete (gritsd gc --keep overrides it)."},

		{Key: "root_ttl", Group: groupOrigin, Default: `"168h"`,
			Doc: "How long a root the origin signs stays valid; it re-signs the current one when a quarter is left."},
		{Key: "chunk_size", Group: groupOrigin, Default: "262144",
			Doc: "Bytes per chunk of imported files. Changing it makes the next import store every file anew."},
		{Key: "store_max", Group: groupOrigin, Default: "0",
			Doc: "Bytes of file content this origin keeps on its disk; the rest lives on storage nodes and is fetched back, verified, when read. 0 keeps everything. Tree nodes always stay. A block leaves only once offload_replicas storage nodes hold it by this origin's own audits."},
		{Key: "offload_replicas", Group: groupOrigin, Default: "2",
			Doc: "With store_max: how many audited storage nodes must hold a block before it leaves this disk."},
		{Key: "audit_interval", Group: groupOrigin, Default: `"1m"`,
			Doc: "How often the origin asks each storage node for one random block, whole (15 MiB an hour per node at 256 KiB blocks). One a minute catches a node that lost 1% of its blocks within a day, all but once in two million days."},
		{Key: "audit_timeout", Group: groupOrigin, Default: `"30s"`,
			Doc: "An audit slower than this counts as unanswered; three in a row and the storage node stops counting as a copy."},
		{Key: "offload_grace", Group: groupOrigin, Default: `"6h"`,
			Doc: "A storage node gone longer than this stops counting as a copy, and what only it held is fetched back."},
		{Key: "watch", Group: groupOrigin, Default: `""`, Flag: "watch",
			Doc: "Re-import this directory into the tree whenever it changes."},
		{Key: "watch_quiet", Group: groupOrigin, Default: `"2s"`, Flag: "watch-quiet",
			Doc: "With watch: how long changes must pause before an import."},

		{Key: "https_listen", Group: groupHTTPS, Default: `":8443"`, Flag: "https",
			Doc: `Address for browsers: HTTPS on TCP and HTTP/3 on UDP, the same port. "off" disables.`},
		{Key: "public_url", Group: groupHTTPS, Default: `""`, Flag: "url",
			Doc: "This node's HTTPS base URL as browsers reach it, when it differs from https://ADVERTISE:PORT (a proxy in front, port 443 forwarded)."},
		{Key: "tls_cert", Group: groupHTTPS, Default: `""`, Flag: "tls-cert", Reload: true,
			Doc: "Certificate chain (PEM) for HTTPS, with tls_key. Re-read when it changes and on SIGHUP. Without it and acme_domains, the data directory's development CA signs one."},
		{Key: "tls_key", Group: groupHTTPS, Default: `""`, Flag: "tls-key", Reload: true,
			Doc: "Private key (PEM) of tls_cert. It must not be readable by others."},
		{Key: "acme_domains", Group: groupHTTPS, Default: "[]", Flag: "acme-domain",
			Doc: "Get certificates from Let's Encrypt for these names (TCP 443 must reach this node: https_listen = \":443\")."},
		{Key: "acme_email", Group: groupHTTPS, Default: `""`, Flag: "acme-email",
			Doc: "Contact address for ACME."},
		{Key: "rate_limit", Group: groupHTTPS, Default: "200", Flag: "rate-limit", Reload: true,
			Doc: "HTTP requests per second per client address (burst twice that); negative: no limit."},
		{Key: "trusted_proxies", Group: groupHTTPS, Default: "[]", Flag: "trusted-proxy", Reload: true,
			Doc: "Addresses or CIDRs of reverse proxies in front of this node whose X-Forwarded-For is believed for rate limits."},
		{Key: "http2", Group: groupHTTPS, Default: `"grits"`, Flag: "http2",
			Doc: `HTTP/2 server: "grits" (the gateway's own, internal/h2: half the CPU per small block) or "go" (Go's net/http server), should one ever misbehave.`},
		{Key: "http_write_timeout", Group: groupHTTPS, Default: `"30s"`,
			Doc: "How long one write to a browser may wait: a client that reads nothing for this long loses the connection, and the handler (or the app's response through the proxy) it held is freed. Slow downloads are fine: every write that completes starts it again."},
		{Key: "http_body_timeout", Group: groupHTTPS, Default: `"30s"`,
			Doc: "How long a client may take to send a request body, plus a second for every http_body_min_rate bytes it has sent: a client that drips an upload slower gets 408 and the app's upload handler is freed."},
		{Key: "http_body_min_rate", Group: groupHTTPS, Default: "1024",
			Doc: "Bytes per second a request body must keep up, after http_body_timeout, to keep going. Lower it if the app takes large uploads from very slow links."},

		{Key: "sw_scope", Group: groupWorker, Default: `"/"`, Flag: "sw-scope", Reload: true,
			Doc: "The URL path the service worker controls."},
		{Key: "sw_paths", Group: groupWorker, Default: `[]`, Flag: "sw-paths", Reload: true,
			Doc: "URL path prefixes the worker serves from volunteers; other requests go to the network untouched. Default: [\"/\"] for a static site (every path is the tree's); with an upstream app, the current tree's top-level names (a directory as \"/name/\", a file as \"/name\"), followed as imports change them, so the app's dynamic routes beside the tree never reach volunteers. [\"/\"] behind an app sends every GET to volunteers as a lookup first, the app's private URLs included."},
		{Key: "sw_navigate", Group: groupWorker, Default: "true", Flag: "sw-navigate", Reload: true,
			Doc: "Serve pages (navigations) from the worker's cache and volunteers too, each verified, the origin only when they cannot: a repeat visit waits on no round trip to the origin. The root is checked beside each such page (one small conditional request) and the page loaded again if an import has replaced it. Default: true for a static site (its pages are the tree's, the same for everyone); false behind an upstream app, whose pages are rendered per user: pages then come from the origin, and from volunteers only while it is unreachable."},
		{Key: "sw_cache_mb", Group: groupWorker, Default: "256", Flag: "sw-cache-mb", Reload: true,
			Doc: "MiB of verified blocks the worker keeps in each browser."},
		{Key: "media_hosts", Group: groupWorker, Default: "[]", Flag: "media-host", Reload: true,
			Doc: "Other host names the origin serves the tree under, each \"https://HOST[:PORT]=/TREE/PATH\" (a media host such as Mastodon's S3_ALIAS_HOST: https://files.example.org=/system serves the tree's /system/a.png as https://files.example.org/a.png, CORS open); the worker serves their URLs from volunteers too. The certificate must name them."},
		{Key: "inject_sw_tree", Group: groupWorker, Default: "false", Flag: "inject-sw-tree", Reload: true,
			Doc: "Add the worker's registration script to the HTML pages the origin serves from the tree (before </head>), so a site generator's output needs no change. Pages that already include it are left alone."},
		{Key: "sw_root_check", Group: groupWorker, Default: `"10s"`, Flag: "sw-root-check", Reload: true,
			Doc: "How long a page left open may read an old root before its worker asks the origin for a newer one (one small conditional request); volunteers' answers bring newer roots sooner, for free. 1s to 24h."},

		{Key: "upstream", Group: groupApp, Default: `""`, Flag: "upstream", Reload: true,
			Doc: "The site's app server (http://HOST:PORT); paths not in the tree are proxied to it, WebSockets included."},
		{Key: "upstream_host", Group: groupApp, Default: `""`, Flag: "upstream-host", Reload: true,
			Doc: "The Host (and X-Forwarded-Host) the app receives on every proxied request, never the browser's own, which anyone can set. Default: the host of this node's public URL (public_url, else https://ADVERTISE:PORT)."},
		{Key: "inject_sw", Group: groupApp, Default: "false", Flag: "inject-sw", Reload: true,
			Doc: "With upstream: add the service worker's registration script to the app's HTML pages."},
		{Key: "proxy_prefixes", Group: groupApp, Default: "[]", Flag: "proxy-prefix", Reload: true,
			Doc: "With upstream: paths under these prefixes always go to the app, e.g. [\"/api/\"]."},

		{Key: "mount", Group: groupMount, Default: `""`, Flag: "mount",
			Doc: "Mount the tree at this directory: read-write on the origin (changes become signed roots), read-only and lazy elsewhere (blocks fetched from the swarm on first read). Needs root and /dev/fuse."},
		{Key: "mount_at", Group: groupMount, Default: `"/"`, Flag: "mount-at",
			Doc: "Origin: the tree path the mount shows, e.g. \"/system\" for Mastodon's public/system."},
		{Key: "mount_quiet", Group: groupMount, Default: `"1s"`, Flag: "mount-quiet",
			Doc: "Origin: how long the mount must be quiet before its changes are committed as one root (at most 10s after the first change)."},
		{Key: "mount_owner", Group: groupMount, Default: `""`, Flag: "mount-owner",
			Doc: "USER[:GROUP] every entry of the mount belongs to, e.g. the application that writes there. Default: the user gritsd runs as."},
		{Key: "publish", Group: groupMount, Default: `"world-readable"`, Flag: "publish",
			Doc: "Origin: which entries of the mount are published: world-readable (what a web server would serve: o+r files in o+rx directories) or all. The rest is kept but held back; gritsd status counts it."},
		{Key: "no_readdirplus", Group: groupMount, Default: "false", Flag: "no-readdirplus",
			Doc: "Read-only mount: list directories by name only (no attributes with the listing): for directories of hundreds of thousands of entries."},

		{Key: "log_level", Group: groupLogging, Default: `"info"`, Flag: "log-level", Reload: true,
			Doc: "debug, info, warn or error. Commands other than serve log warnings and errors unless --log-level says otherwise."},
		{Key: "log_format", Group: groupLogging, Default: `"auto"`, Flag: "log-format",
			Doc: "auto (text when stderr is a terminal, JSON lines otherwise, as under systemd), text or json."},
	}
}

// SettingByKey finds a setting's documentation.
func SettingByKey(key string) (Setting, bool) {
	for _, s := range Settings() {
		if s.Key == key {
			return s, true
		}
	}
	return Setting{}, false
}
