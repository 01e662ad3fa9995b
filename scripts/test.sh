#!/usr/bin/env bash
# The test command (README.md): installs what the tests need on a fresh
# Debian machine, then runs every test, end-to-end ones included.
#
# Needs Go (see go.mod), and root for network namespaces (e2e/vanish_test.go,
# as CI runs). Installs npm, redis-server, chromium and iproute2 from Debian
# when missing (tests start their own redis-server processes; the console's
# test drives headless Chromium; ip makes the namespaces); Node.js 22 and
# the official MCP conformance suite are installed from npm into
# ${PINGMCP_CACHE:-$HOME/.cache/pingmcp} by scripts/conformance.sh on first use.
# scripts/kube.sh installs etcd-server from Debian and builds kube-apiserver
# and kubectl into the same cache (the Kubernetes e2e test, e2e/kube_test.go):
# about 5 minutes, the first time only (a whole first run with empty Go,
# npm and pingmcp caches took 30 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v npm >/dev/null || missing+=(npm)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v chromium >/dev/null || missing+=(chromium)
command -v ip >/dev/null || missing+=(iproute2)
if [[ ${#missing[@]} -gt 0 ]]; then
	sudo=""
	[[ $(id -u) -eq 0 ]] || sudo=sudo
	echo "test: installing ${missing[*]} from Debian" >&2
	$sudo apt-get update
	$sudo apt-get install -y "${missing[@]}"
fi

echo "test: Kubernetes API server binaries (scripts/kube.sh)" >&2
scripts/kube.sh >/dev/null

echo "test: go vet" >&2
go vet ./...
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [[ -n $unformatted ]]; then
	echo "test: gofmt would change: $unformatted" >&2
	exit 1
fi

echo "test: go test (race detector on; e2e tests start real node processes)" >&2
go test -race -count=1 -timeout 20m "$@" ./...

# Fuzzing (issue 6). The seed corpora (testdata/fuzz/<target>/) already ran
# above as ordinary tests; here each target is fuzzed for a bounded time,
# ${PINGMCP_FUZZTIME:-10s} each (0 skips this). go test takes one -fuzz
# target per run; no race detector (it slows fuzzing down tenfold); new
# inputs are minimized for 2 s at most, so that the time goes to fuzzing. A
# failure stops the script, with the failing input left under the target's
# testdata/fuzz/ directory: commit it with the fix, as a regression test.
fuzz_targets=(
	"./transport FuzzEdgeRequest"
	"./internal/rpcbody FuzzRead"
	"./internal/rpcbody FuzzReadAgreesWithDecoder"
	"./transport FuzzValidSessionID"
	"./auth FuzzBearerToken"
	"./auth FuzzJWTVerify"
	"./actors FuzzSnapshotDecode"
	"./state FuzzOpen"
	"./cluster/envelope FuzzEnvelope"
)
fuzztime=${PINGMCP_FUZZTIME:-10s}
if [[ $fuzztime != 0 && $fuzztime != 0s ]]; then
	for target in "${fuzz_targets[@]}"; do
		read -r pkg name <<<"$target"
		echo "test: fuzz $name in $pkg for $fuzztime" >&2
		log=$(mktemp)
		if ! go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" -fuzzminimizetime 2s "$pkg" 2>&1 | tee "$log"; then
			# Go's fuzzer sometimes ends a run that found nothing with
			# "context deadline exceeded" when its time is up while a worker
			# is busy: that run is done again, once. A crash (its input
			# written under testdata/fuzz) fails at once.
			if grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
				echo "test: fuzz $name: the fuzzer timed out at its own deadline, finding nothing; running it again" >&2
				go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" -fuzzminimizetime 2s "$pkg"
			else
				rm -f "$log"
				exit 1
			fi
		fi
		rm -f "$log"
	done
fi
