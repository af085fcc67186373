#!/usr/bin/env bash
# Usage: deploy/install-deps.sh [prosody] [ejabberd] [ngircd] [nodejs] [strace] [dendrite]
#
# Installs what the end-to-end tests and the demo run, if the binaries are
# missing (Debian/Ubuntu, apt-get): the XMPP servers, the IRC server ngircd,
# and Node.js with npm for the external adapter example
# (examples/external-echo); dendrite builds the Matrix homeserver the
# Matrix tests run (internal/dendritetest) from the Go module proxy into
# the user cache directory, once per version (cgo: gcc is installed if
# missing). Non-interactive: works in CI with no stdin.
# Installed services are not left running: the tests and the demo start
# their own instances on their own ports.
set -euo pipefail

usage() { echo "usage: $0 [prosody] [ejabberd] [ngircd] [nodejs] [strace] [dendrite]" >&2; exit 2; }
[ $# -gt 0 ] || usage

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=(sudo -n) # -n: fail instead of prompting (no stdin in CI)
	else
		echo "install-deps: not root and sudo is not available; install as root: apt-get install -y $*" >&2
		exit 1
	fi
fi

updated=
apt_install() { # package
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "install-deps: $1 is missing and apt-get is not available; install $1 with your package manager" >&2
		exit 1
	fi
	if [ -z "$updated" ]; then
		"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
		updated=1
	fi
	echo "install-deps: installing $1"
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" </dev/null
}

# On a host with systemd the package starts its service, which takes the
# standard ports (5222...). Stop and disable only what we just installed.
stop_service() { # service
	command -v systemctl >/dev/null 2>&1 || return 0
	[ -d /run/systemd/system ] || return 0 # systemctl present, systemd not running
	if systemctl is-active --quiet "$1" 2>/dev/null; then
		echo "install-deps: stopping the $1 system service (tests run their own)"
		"${SUDO[@]}" systemctl stop "$1" </dev/null || true
	fi
	"${SUDO[@]}" systemctl disable --quiet "$1" </dev/null 2>/dev/null || true
}

installed() { # binary
	# ejabberdctl and ngircd live in /usr/sbin, which a non-root PATH may lack.
	command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]
}

cloud_notify=/usr/lib/prosody/modules/mod_cloud_notify/mod_cloud_notify.lua

for dep in "$@"; do
	case $dep in
	prosody)
		bin=prosody
		# The push tests enable mod_cloud_notify, from Debian's prosody-modules.
		if installed prosody && [ ! -e "$cloud_notify" ]; then apt_install prosody-modules; fi
		;;
	ejabberd) bin=ejabberdctl ;;
	ngircd) bin=ngircd ;;
	strace) bin=strace ;; # make bench counts the store's writes with it
	nodejs)
		# Two Debian packages; npm is not always pulled in with nodejs.
		installed node || apt_install nodejs
		installed npm || apt_install npm
		major=$(node -e 'process.stdout.write(process.versions.node.split(".")[0])')
		if [ "$major" -lt 18 ]; then
			echo "install-deps: node $(node --version) is too old: examples/external-echo needs Node.js 18 or later (e.g. from NodeSource)" >&2
			exit 1
		fi
		echo "install-deps: nodejs $(node --version) and npm $(npm --version 2>/dev/null) are installed"
		continue
		;;
	dendrite)
		# Keep in step with internal/dendritetest (Version, CacheDir).
		version=v0.13.8
		dir="${XDG_CACHE_HOME:-$HOME/.cache}/xmppgw/dendrite-$version"
		if [ -x "$dir/dendrite" ] && [ -x "$dir/generate-keys" ] && [ -x "$dir/generate-config" ]; then
			echo "install-deps: dendrite $version is built ($dir)"
			continue
		fi
		installed gcc || apt_install gcc
		[ -e /usr/include/stdio.h ] || apt_install libc6-dev
		echo "install-deps: building dendrite $version into $dir (about 3 minutes, once)"
		mkdir -p "${dir%/*}"
		tmp=$(mktemp -d "${dir%/*}/dendrite-build.XXXXXX")
		start=$SECONDS
		(cd "$tmp" && env GOBIN="$tmp" CGO_ENABLED=1 GOFLAGS=-buildvcs=false go install \
			github.com/matrix-org/dendrite/cmd/dendrite@$version \
			github.com/matrix-org/dendrite/cmd/generate-keys@$version \
			github.com/matrix-org/dendrite/cmd/generate-config@$version </dev/null)
		rm -rf "$dir"
		mv "$tmp" "$dir"
		echo "install-deps: built dendrite $version in $((SECONDS - start)) s"
		continue
		;;
	*) usage ;;
	esac
	if installed "$bin"; then
		echo "install-deps: $dep is installed"
		continue
	fi
	apt_install "$dep"
	[ "$dep" != prosody ] || [ -e "$cloud_notify" ] || apt_install prosody-modules
	[ "$dep" = strace ] || stop_service "$dep"
done
