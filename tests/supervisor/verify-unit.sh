#!/bin/sh
# Checks the systemd unit with systemd-analyze verify, which must print
# nothing, and that the example env file documents every DEALIMPORT_* setting
# proto/dip_config knows. verify also checks that ExecStart= is executable, so
# it reads a copy whose ExecStart= names /bin/true; the copy keeps the unit's
# name. Exits 77 (skipped) without systemd-analyze, 1 where CI=true (CI
# installs it: a skip there would hide a missing install step).
# Usage: verify-unit.sh UNIT ENV_EXAMPLE DIP_CONFIG_C
set -eu
unit=$1 envfile=$2 config=$3

fail=0
if grep -qx 'ExecStart=/usr/local/bin/dealimport-supervisor --config /etc/dealimport/dealimport.env' "$unit"; then :
else
    echo "unit: ExecStart= is not /usr/local/bin/dealimport-supervisor --config /etc/dealimport/dealimport.env" >&2
    fail=1
fi
# A configuration or usage error must not restart for ever; a reload is a
# SIGHUP to the supervisor, which reads --config again.
grep -qx 'RestartPreventExitStatus=64 78' "$unit" ||
    { echo "unit: no RestartPreventExitStatus=64 78" >&2; fail=1; }
grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$unit" ||
    { echo "unit: no ExecReload=/bin/kill -HUP \$MAINPID" >&2; fail=1; }
for name in $(grep -o '"DEALIMPORT_[A-Z0-9_]*"' "$config" | tr -d '"' |
    sort -u); do
    if ! grep -q "^#\{0,1\}$name=" "$envfile"; then
        echo "env example: '$name' is missing" >&2
        fail=1
    fi
done

if ! command -v systemd-analyze >/dev/null 2>&1; then
    [ "$fail" -eq 0 ] || exit 1
    echo "skipped: systemd-analyze is not installed" >&2
    if [ "${CI:-}" = true ]; then
        echo "CI=true: a missing package, tool or service is a failure" >&2
        exit 1
    fi
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
copy="$tmp/$(basename "$unit")"
sed 's|^ExecStart=.*|ExecStart=/bin/true|' "$unit" >"$copy"
if ! out=$(cd "$tmp" && systemd-analyze verify "$copy" 2>&1); then
    fail=1
fi
if [ -n "$out" ]; then
    printf '%s\n' "$out" >&2
    fail=1
fi
exit $fail
