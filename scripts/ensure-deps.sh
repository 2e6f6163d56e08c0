#!/bin/sh
# SPDX-License-Identifier: MIT
# ensure-deps.sh CHECK:PACKAGE...  — installs each Debian PACKAGE whose CHECK
# (a command name, or an absolute path to a file) is missing.  Installs only
# as root; otherwise says what is missing and fails.
set -eu
missing=""
for pair in "$@"; do
    check=${pair%%:*}
    pkg=${pair#*:}
    case $check in
        /*) [ -e "$check" ] && continue ;;
        *) command -v "$check" >/dev/null 2>&1 && continue ;;
    esac
    missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
    exit 1
fi
echo "installing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
