#!/bin/bash
#
# install-deps.sh - make sure the Debian 12 packages pg_paxos needs are there
#
# Idempotent and quiet: when every package is already installed it prints
# nothing and exits 0.  Otherwise it runs apt-get update and installs the
# missing packages without recommends.  It never reads stdin, so it works in
# CI and from make.
#
set -euo pipefail

PACKAGES=(
	build-essential
	postgresql-15
	postgresql-server-dev-15
	libpq-dev
	libcmocka-dev
	python3-pytest
	python3-psycopg2
	libmicrohttpd-dev
	libjansson-dev
	clang
	libclang-rt-14-dev
	chromium
	curl
)

missing=()
for pkg in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	if [ "$status" != "install ok installed" ]; then
		missing+=("$pkg")
	fi
done

[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing missing packages: ${missing[*]}"

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=(sudo -n)
	else
		echo "install-deps: not root and no sudo; install as root: ${missing[*]}" >&2
		exit 1
	fi
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q </dev/null
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
