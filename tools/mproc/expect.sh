#!/bin/sh
# SPDX-License-Identifier: MIT
# CTest helper: run a command, show its output, and check it.
#   expect.sh [-j] STATUS PATTERN COMMAND [ARGS...]
# STATUS: 0, or "fail" for any non-zero exit.  PATTERN: a grep basic regular
# expression (backreferences work, unlike in CMake's PASS_REGULAR_EXPRESSION)
# that stdout+stderr must match; '' for none.  -j: stdout must be exactly one
# JSON object (checked with python3 when it is installed).
json=no
if [ "$1" = "-j" ]; then json=yes; shift; fi
want=$1 pattern=$2
shift 2
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
"$@" >"$out" 2>"$err"
status=$?
cat "$err" "$out"
case $want in
0) [ "$status" -eq 0 ] || { echo "expect.sh: exit status $status, wanted 0"; exit 1; } ;;
fail) [ "$status" -ne 0 ] || { echo "expect.sh: exit status 0, wanted a failure"; exit 1; } ;;
esac
if [ -n "$pattern" ] && ! cat "$out" "$err" | grep -q -- "$pattern"; then
    printf 'expect.sh: output does not match: %s\n' "$pattern"
    exit 1
fi
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
