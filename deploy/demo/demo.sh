#!/usr/bin/env bash
# Usage: deploy/demo/demo.sh   (or: make demo)
#
# Runs a local demo: Prosody on 127.0.0.1 with the component
# sandbox.localhost, and the gateway with the sandbox adapter (it answers
# "echo: <text>"). Log in with any XMPP client as alice@localhost and message
# +15551234567@sandbox.localhost. Ctrl-C stops everything the script started.
#
# Environment: DEMO_DIR (default /tmp/xmppgw-demo), DEMO_PASSWORD (default
# demo-password), DEMO_C2S_PORT (5222), DEMO_COMPONENT_PORT (5347).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=${DEMO_DIR:-/tmp/xmppgw-demo}
PASSWORD=${DEMO_PASSWORD:-demo-password}
C2S_PORT=${DEMO_C2S_PORT:-5222}
COMPONENT_PORT=${DEMO_COMPONENT_PORT:-5347}
HTTP_ADDR=127.0.0.1:8080 # http.listen in deploy/demo/xmppgw.yaml
CFG=$DIR/prosody.cfg.lua

say() { printf 'demo: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

accepting() { # host port: true if something accepts connections there
	(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

wait_port() { # host port seconds
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		accepting "$1" "$2" && return 0
		kill -0 "$PROSODY_PID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

PROSODY_PID=
GATEWAY_PID=
stop_pid() { # pid name: TERM, wait up to 10 s, then KILL
	local pid=$1 i
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	say "stopping $2 (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	trap - INT TERM EXIT
	stop_pid "$GATEWAY_PID" gateway
	stop_pid "$PROSODY_PID" prosody
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Fail before starting anything if the ports are taken (a system Prosody or
# ejabberd, or another demo).
for port in "$C2S_PORT" "$COMPONENT_PORT" "${HTTP_ADDR#*:}"; do
	if accepting 127.0.0.1 "$port"; then
		die "port 127.0.0.1:$port is already in use (a system XMPP server or another demo?); stop it first: ss -ltnp 'sport = :$port'"
	fi
done

command -v go >/dev/null 2>&1 || die "go is not installed"
bash "$ROOT/deploy/install-deps.sh" prosody
command -v prosody >/dev/null 2>&1 || die "prosody is not installed"

mkdir -p "$DIR/certs" "$DIR/data"
rm -rf "$DIR/prosody-data" # fresh accounts each run
mkdir -p "$DIR/prosody-data"

cat >"$CFG" <<EOF
-- Written by deploy/demo/demo.sh
run_as_root = true -- the demo may run as uid 0; without this Prosody refuses to start (and hangs)
pidfile = "$DIR/prosody.pid"
data_path = "$DIR/prosody-data"
certificates = "$DIR/certs"
log = { info = "$DIR/prosody.log" }

interfaces = { "127.0.0.1" }
c2s_ports = { $C2S_PORT }
component_interfaces = { "127.0.0.1" }
component_ports = { $COMPONENT_PORT }

modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping"; "posix" }
modules_disabled = { "s2s"; "s2s_auth_certs"; "offline" }

authentication = "internal_plain"
storage = "internal"
-- Loopback only: clients may log in without TLS; STARTTLS is offered with a
-- self-signed certificate for clients that insist.
c2s_require_encryption = false
allow_unencrypted_plain_auth = true

VirtualHost "localhost"

Component "sandbox.localhost"
	component_secret = "secret"
EOF

# Optional self-signed certificate. prosodyctl prompts, so no stdin; it also
# refuses to overwrite, hence the check.
if [ ! -f "$DIR/certs/localhost.crt" ]; then
	prosodyctl --config "$CFG" cert generate localhost </dev/null >"$DIR/cert.log" 2>&1 ||
		say "could not generate a certificate (see $DIR/cert.log); continuing without STARTTLS"
fi
# --config must come before the subcommand, or prosodyctl uses /etc/prosody.
prosodyctl --config "$CFG" register alice localhost "$PASSWORD" </dev/null

prosody --config "$CFG" -F </dev/null >"$DIR/prosody.stdout.log" 2>&1 &
PROSODY_PID=$!
if ! wait_port 127.0.0.1 "$C2S_PORT" 15 || ! wait_port 127.0.0.1 "$COMPONENT_PORT" 15; then
	cat "$DIR/prosody.log" "$DIR/prosody.stdout.log" >&2 2>/dev/null || true
	die "Prosody did not start (logs above)"
fi
say "Prosody is running (pid $PROSODY_PID, log $DIR/prosody.log)"

say "building the gateway"
(cd "$ROOT" && go build -tags goolm -o "$DIR/xmppgw" ./cmd/xmppgw)

cat >&2 <<EOF

==================================================================
 xmppgw demo

 Log in with any XMPP client:
   JID:       alice@localhost
   Password:  $PASSWORD
   Server:    127.0.0.1, port $C2S_PORT (no TLS needed on loopback)

 Then message +15551234567@sandbox.localhost
 and it answers  echo: <your text>

 Press Ctrl-C to stop the gateway and Prosody.
==================================================================

EOF

cd "$ROOT"
# In the background plus wait, so a TERM to this script is handled at once
# (the trap stops the gateway) rather than after the gateway exits.
"$DIR/xmppgw" run -c deploy/demo/xmppgw.yaml \
	--bus-data-dir "$DIR/data" \
	--xmpp-server "127.0.0.1:$COMPONENT_PORT" </dev/null &
GATEWAY_PID=$!
status=0
wait "$GATEWAY_PID" || status=$?
GATEWAY_PID=
say "the gateway exited with status $status"
exit "$status"
