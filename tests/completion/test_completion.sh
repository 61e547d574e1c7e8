#!/bin/bash
# Sources a dealimportctl completion file and completes as bash-completion
# would (COMP_WORDS, COMP_CWORD, the registered function): commands, options,
# --status values, and import ids from `dealimportctl list --json`, here a
# stand-in program that prints a list reply and records its arguments.
# Usage: test_completion.sh COMPLETION_FILE
set -u
file=$1
fails=0 passed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# shellcheck source=/dev/null
. "$file"
fn=$(complete -p dealimportctl 2>/dev/null | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
if [ -z "$fn" ]; then
    echo "FAIL: '$file' registers no completion function for dealimportctl"
    echo "0 passed, 1 failed"
    exit 1
fi

# A stand-in dealimportctl: two running imports, one paused.
cat > "$tmp/dealimportctl" <<'SH'
#!/bin/sh
echo "$*" >> "$(dirname "$0")/calls"
case "$*" in
    *"--status paused"*) echo '{"v":1,"ok":true,"imports":[{"id":"64b0000000000000000000c3","status":"paused"}]}' ;;
    *) echo '{"v":1,"ok":true,"imports":[{"id":"64b0000000000000000000a1","account":"64b0000000000000000000ff","status":"processing"},{"id":"64b0000000000000000000a2","status":"processing"}]}' ;;
esac
SH
chmod +x "$tmp/dealimportctl"

# complete WANT WORD...: the last word is the one being completed.
check() {
    local want=$1
    shift
    COMP_WORDS=("$@")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE="$*"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    "$fn" dealimportctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
    local got
    got=$(printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//')
    if [ "$got" = "$want" ]; then
        passed=$((passed + 1))
    else
        echo "FAIL: '$*' completed to '$got', wanted '$want'"
        fails=$((fails + 1))
    fi
}

check "pause" dealimportctl pa
check "resume revert" dealimportctl re
check "metrics" dealimportctl --json me
check "--status" dealimportctl list --st
check "processing" dealimportctl list --status pro
check "--interval" dealimportctl watch --int
check "--dry-run" dealimportctl revert --dr
check "--date-order" dealimportctl enqueue --da
check "DMY" dealimportctl enqueue --date-order D
check "--config --connect" dealimportctl --c
check "64b0000000000000000000a1 64b0000000000000000000a2" "$tmp/dealimportctl" pause ""
check "64b0000000000000000000a2" "$tmp/dealimportctl" cancel 64b0000000000000000000a2
check "64b0000000000000000000c3" "$tmp/dealimportctl" resume 64
check "" "$tmp/dealimportctl" status ""
# The options already typed reach the list request.
: > "$tmp/calls"
check "64b0000000000000000000a1 64b0000000000000000000a2" "$tmp/dealimportctl" --connect tcp://h:7601 show ""
if grep -q -- "--connect tcp://h:7601" "$tmp/calls" && grep -q -- "--status processing" "$tmp/calls"; then
    passed=$((passed + 1))
else
    echo "FAIL: the list request was '$(cat "$tmp/calls")'"
    fails=$((fails + 1))
fi

echo "$passed passed, $fails failed"
[ "$fails" -eq 0 ]
