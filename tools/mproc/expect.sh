#!/bin/sh
# SPDX-License-Identifier: MIT
# CTest helper: run a command, show its output, and check it.
#   expect.sh [-j] [-m PATTERN]... STATUS PATTERN COMMAND [ARGS...]
# STATUS: an exit status (0, 3...), or "fail" for any non-zero exit.
# PATTERN: a grep basic regular expression (backreferences work, unlike in
# CMake's PASS_REGULAR_EXPRESSION) that stdout+stderr must match; '' for
# none.  -m PATTERN: one more pattern that must match too (repeatable).
# -j: stdout must be exactly one JSON object (checked with python3 when it
# is installed).
json=no
more=$(mktemp)
trap 'rm -f "$more"' EXIT
while :; do
    case $1 in
    -j) json=yes; shift ;;
    -m) printf '%s\n' "$2" >>"$more"; shift 2 ;;
    *) break ;;
    esac
done
want=$1 pattern=$2
shift 2
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err" "$more"' EXIT
"$@" >"$out" 2>"$err"
status=$?
cat "$err" "$out"
case $want in
fail) [ "$status" -ne 0 ] || { echo "expect.sh: exit status 0, wanted a failure"; exit 1; } ;;
*) [ "$status" -eq "$want" ] || { echo "expect.sh: exit status $status, wanted $want"; exit 1; } ;;
esac
[ -n "$pattern" ] && printf '%s\n' "$pattern" >>"$more"
while IFS= read -r p; do
    if ! cat "$out" "$err" | grep -q -- "$p"; then
        printf 'expect.sh: output does not match: %s\n' "$p"
        exit 1
    fi
done <"$more"
if [ "$json" = yes ]; then
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import json, sys; assert isinstance(json.load(sys.stdin), dict)' <"$out" ||
            { echo "expect.sh: stdout is not one JSON object"; exit 1; }
    elif [ "$(wc -l <"$out")" -ne 1 ] || ! grep -q '^{.*}$' "$out"; then
        echo "expect.sh: stdout is not one JSON object"
        exit 1
    fi
fi
exit 0
