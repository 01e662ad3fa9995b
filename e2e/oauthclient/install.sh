#!/usr/bin/env bash
# Installs what e2e/oauthclient/client.mjs needs and prints the path of the
# node binary to run it with (the only line on stdout).
#
# usage: e2e/oauthclient/install.sh
#
# Node.js 22 comes from scripts/node22.sh; the dependencies of package.json (exact versions, no lockfile) in a
# folder of that cache named after package.json's hash, linked here as
# node_modules. Each is installed once, atomically: an interrupted install
# leaves nothing behind that would pass for a complete one. Bootstrapping
# needs only some npm (any Node.js version) on PATH.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
who=oauthclient
# shellcheck source=../../scripts/node22.sh
. "$here/../../scripts/node22.sh"

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
