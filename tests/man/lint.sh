#!/bin/sh
# Checks the built manual pages: groff -man -ww -z prints no warning for any
# of them, man -l renders each, and they document what the code knows: every
# setting of proto/dip_config.c in dealimport.env(5), every dealimportctl
# command in dealimportctl(1), every long option of the supervisor and the
# worker in their pages, and every exit status of proto/dip_exit.h somewhere.
# Usage: lint.sh MAN_DIR SOURCE_DIR
set -eu
dir=$1 src=$2
fail=0
say() { echo "$*" >&2; fail=1; }

for page in dealimport-supervisor.8 dealimport-worker.8 dealimportctl.1 \
    dealimport.env.5; do
    f=$dir/$page
    [ -f "$f" ] || { say "$page: not built"; continue; }
    out=$(groff -man -ww -z "$f" 2>&1) || say "$page: groff failed"
    [ -z "$out" ] || say "$page: groff warnings:
$out"
    if command -v man >/dev/null 2>&1; then
        lines=$(MANWIDTH=80 LC_ALL=C.UTF-8 man -l "$f" 2>/dev/null | wc -l)
        [ "$lines" -gt 20 ] || say "$page: man -l rendered $lines lines"
    fi
done

# roff writes '-' as '\-'; compare against the text with that undone.
plain() { sed 's/\\-/-/g' "$dir/$1"; }

for name in $(grep -o '"\(DEALIMPORT\|APP\)_[A-Z0-9_]*"' \
    "$src/proto/dip_config.c" | tr -d '"' | sort -u) APP_SECRET_FILE \
    DEALIMPORT_LOG_LEVEL; do
    plain dealimport.env.5 | grep -q "^\.B[R]* $name\b" ||
        plain dealimport.env.5 | grep -q "^\.BR .*\b$name\b" ||
        say "dealimport.env.5: setting '$name' is not documented"
done
for cmd in $(grep -o '^    {"[a-z]*", [a-z_]*,' "$src/ctl/main.c" |
    sed 's/.*{"\([a-z]*\)".*/\1/'); do
    plain dealimportctl.1 | grep -q "^\.\(B\|BI\|TP\) *$cmd\b\|^\.B $cmd " ||
        say "dealimportctl.1: command '$cmd' is not documented"
done
for pair in supervisor:dealimport-supervisor.8 worker:dealimport-worker.8; do
    prog=${pair%%:*} page=${pair#*:}
    for opt in $(grep -o '{"[a-z-]*", \(no\|required\)_argument' \
        "$src/$prog/main.c" | sed 's/{"\([a-z-]*\)".*/\1/'); do
        plain "$page" | grep -q -- "--$opt\b" ||
            say "$page: option '--$opt' is not documented"
    done
done
for code in $(sed -n 's/.*DIP_EXIT_[A-Z]* = \([0-9]*\),.*/\1/p' \
    "$src/proto/dip_exit.h"); do
    cat "$dir"/*.[0-9] | grep -q "^\.B $code$" ||
        cat "$dir"/*.[0-9] | grep -q "status of $code\|A status of $code" ||
        say "exit status $code is documented in no page"
done
exit $fail
