#!/usr/bin/env bash
# The main job until `gritsd demo` exists: build gritsd, create an origin
# in a temporary directory, import this repository's docs/, serve them
# over grits/1 (QUIC on loopback), fetch a file back with `gritsd get`
# from a second, empty data directory that knows only the site key, and
# check the bytes. Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

work=$(mktemp -d)
serve_pid=
cleanup() {
	[[ -n "$serve_pid" ]] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/gritsd" ./cmd/gritsd
g() { "$work/gritsd" "$@"; }

echo "== gritsd init --origin"
site_key=$(g --data "$work/origin" init --origin | sed -n 's/^site-key: //p')
echo "site key: $site_key"

echo "== gritsd import docs"
g --data "$work/origin" import docs
g --data "$work/origin" ls /

echo "== gritsd proof /design.md"
g --data "$work/origin" proof /design.md

echo "== gritsd serve (background)"
"$work/gritsd" --data "$work/origin" serve --listen 127.0.0.1:0 > "$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do
	addr=$(sed -n 's/^listening on //p' "$work/serve.log")
	[[ -n "$addr" ]] && break
	sleep 0.1
done
[[ -n "${addr:-}" ]] || { cat "$work/serve.log"; echo "serve did not start" >&2; exit 1; }
echo "serving on $addr"

echo "== gritsd get --peer $addr /design.md (a client that knows only the site key)"
g --data "$work/client" get --peer "$addr" --site-key "$site_key" /design.md -o "$work/design.md"
cmp "$work/design.md" docs/design.md
echo "fetched and verified: identical to docs/design.md"

echo "== gritsd get of a missing path (proven absent, exit 1)"
if g --data "$work/client" get --peer "$addr" --site-key "$site_key" /missing.md -o "$work/x"; then
	echo "expected a proof of absence" >&2
	exit 1
fi

echo "== gritsd fsck"
g --data "$work/origin" fsck
echo "ok"
