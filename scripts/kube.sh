#!/usr/bin/env bash
# Installs what the Kubernetes e2e test (e2e/kube_test.go, issue 14) needs:
# a real etcd and kube-apiserver, and a kubectl of the same minor version.
#
# usage: scripts/kube.sh        (prints the folder holding the binaries)
#
#   etcd            Debian's etcd-server, installed with apt-get when missing.
#   kube-apiserver  built from k8s.io/kubernetes $kube_version (Go module
#                   proxy), once, into
#                   ${PINGMCP_CACHE:-$HOME/.cache/pingmcp}/kube/$kube_version/.
#   kubectl         the one on PATH when its minor version is within one of
#                   the server's (kubectl's supported skew); otherwise built
#                   the same way into that folder.
#
# k8s.io/kubernetes is not meant to be required as a module: its go.mod
# points every k8s.io/<staging module> at ./staging. A throwaway module in a
# temporary folder requires it and replaces each staging module with its
# published v0.x release of the same patch version, then builds the
# commands. The first build takes about 5 minutes on 2 cores (293 s
# measured, both commands, with an empty Go build cache on an otherwise
# quiet machine; 627 s at nice 15 on a busy one); afterwards the script
# returns at once (0.2 s).
set -euo pipefail
cd "$(dirname "$0")/.."

readonly kube_version=v1.34.4
readonly staging_version=v0${kube_version#v1}
cache=${PINGMCP_CACHE:-$HOME/.cache/pingmcp}
dest=$cache/kube/$kube_version

say() { echo "kube: $*" >&2; }
die() {
	say "FAILED: $*"
	exit 1
}

if ! command -v etcd >/dev/null; then
	sudo=""
	[[ $(id -u) -eq 0 ]] || sudo=sudo
	say "installing etcd-server from Debian"
	# (stdout is for the folder's name: apt's output goes to stderr)
	$sudo apt-get update >&2
	$sudo apt-get install -y etcd-server >&2
	# Debian starts an etcd service on install; the test runs its own.
	$sudo systemctl disable --now etcd >/dev/null 2>&1 || true
	command -v etcd >/dev/null || die "etcd-server installed but no etcd on PATH"
fi
say "etcd: $(command -v etcd) ($(etcd --version 2>/dev/null | head -n 1))"

# kubectl_ok BIN: BIN's client minor version is within one of the server's.
kubectl_ok() {
	local v minor want=${kube_version#v1.}
	want=${want%%.*}
	v=$("$1" version --client -o json 2>/dev/null) || return 1
	minor=$(sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p' <<<"$v" | head -n 1)
	[[ -n $minor ]] && ((minor >= want - 1 && minor <= want + 1))
}

targets=()
[[ -x $dest/kube-apiserver ]] || targets+=(cmd/kube-apiserver)
if [[ ! -x $dest/kubectl ]]; then
	if command -v kubectl >/dev/null && kubectl_ok "$(command -v kubectl)"; then
		say "kubectl: using $(command -v kubectl)"
		mkdir -p "$dest"
		ln -sf "$(command -v kubectl)" "$dest/kubectl"
	else
		command -v kubectl >/dev/null && say "kubectl on PATH is too far from $kube_version ($(kubectl version --client 2>/dev/null | head -n 1)); building one"
		targets+=(cmd/kubectl)
	fi
fi

if [[ ${#targets[@]} -gt 0 ]]; then
	command -v go >/dev/null || die "no go on PATH"
	start=$(date +%s)
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	say "building ${targets[*]} from k8s.io/kubernetes@$kube_version in $tmp (about 5 minutes on 2 cores, once)"
	(
		cd "$tmp"
		go mod init pingmcp.invalid/kubebuild >/dev/null 2>&1
		# kubernetes' own go.mod names its staging modules in replace
		# directives (k8s.io/X => ./staging/src/k8s.io/X).
		modfile=$(go mod download -json "k8s.io/kubernetes@$kube_version" | sed -n 's/^[[:space:]]*"GoMod": *"\(.*\)",*$/\1/p')
		[[ -f $modfile ]] || die "could not download k8s.io/kubernetes@$kube_version"
		staging=$(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "$modfile")
		[[ -n $staging ]] || die "no staging replace directives in $modfile"
		args=(-require "k8s.io/kubernetes@$kube_version")
		for m in $staging; do
			args+=(-replace "$m=$m@$staging_version")
		done
		go mod edit "${args[@]}"
		pkgs=()
		for t in "${targets[@]}"; do pkgs+=("k8s.io/kubernetes/$t"); done
		# Resolves the rest of the build list (kubernetes' own requirements).
		nice -n 15 go get "${pkgs[@]/%/@$kube_version}" >&2
		ldflags="-s -w"
		for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
			ldflags+=" -X $p.gitVersion=$kube_version -X $p.gitMajor=1 -X $p.gitMinor=$(cut -d. -f2 <<<"$kube_version")"
			ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
		done
		mkdir -p "$tmp/bin"
		CGO_ENABLED=0 nice -n 15 go build -trimpath -ldflags "$ldflags" -o "$tmp/bin/" "${pkgs[@]}" >&2
	) || die "building ${targets[*]} failed"
	mkdir -p "$dest"
	for t in "${targets[@]}"; do
		mv "$tmp/bin/$(basename "$t")" "$dest/"
	done
	say "built ${targets[*]} in $(($(date +%s) - start)) s"
fi

"$dest/kube-apiserver" --version >/dev/null || die "$dest/kube-apiserver does not run"
say "kube-apiserver: $dest/kube-apiserver ($("$dest/kube-apiserver" --version))"
say "kubectl: $dest/kubectl"
echo "$dest"
