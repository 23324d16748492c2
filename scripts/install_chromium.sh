#!/usr/bin/env bash
# Headless Chromium for the Definitions page test (tests/e2e/test_definitions_page.py).
# Debian's package; `make test` runs this so a new machine gets it. Without root or apt it
# says why and exits 0: the test itself then skips on a laptop and fails under CI=true.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium: no apt-get here; install Chromium yourself for the Definitions page test" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install_chromium: not root and no password-less sudo; skipping (apt-get install -y chromium)" >&2
        exit 0
    fi
fi
echo "installing Debian's chromium (headless browser for the UI test) ..."
export DEBIAN_FRONTEND=noninteractive
# The package lists may be missing or stale on a fresh machine.
$SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || {
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null
}
chromium --version
