#!/usr/bin/env bash
# The test command (README.md): installs what the tests need on a fresh
# Debian machine, then runs every test, end-to-end ones included.
#
# Needs Go (see go.mod). Installs npm, redis-server and chromium from Debian
# when missing (tests start their own redis-server processes; the console's
# test drives headless Chromium); Node.js 22 and
# the official MCP conformance suite are installed from npm into
# ${PINGMCP_CACHE:-$HOME/.cache/pingmcp} by scripts/conformance.sh on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v npm >/dev/null || missing+=(npm)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v chromium >/dev/null || missing+=(chromium)
if [[ ${#missing[@]} -gt 0 ]]; then
	sudo=""
	[[ $(id -u) -eq 0 ]] || sudo=sudo
	echo "test: installing ${missing[*]} from Debian" >&2
	$sudo apt-get update
	$sudo apt-get install -y "${missing[@]}"
fi

echo "test: go vet" >&2
go vet ./...
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [[ -n $unformatted ]]; then
	echo "test: gofmt would change: $unformatted" >&2
	exit 1
fi

echo "test: go test (race detector on; e2e tests start real node processes)" >&2
go test -race -count=1 -timeout 20m "$@" ./...
