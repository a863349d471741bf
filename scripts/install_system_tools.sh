#!/usr/bin/env bash
# System tools the tests use, installed here and never from inside a test: headless Chromium for
# the report.html screenshots (tests/runtime/report/test_report_html.py) and strace for the
# signal-injection tests of the bundle commit (tests/exporter/test_bundle_commit.py). From Debian's
# packages where this runs as root with apt-get; elsewhere it says so and those tests skip.
set -u
have_browser=""
for name in chromium chromium-browser google-chrome google-chrome-stable; do
    command -v "$name" >/dev/null 2>&1 && have_browser=1
done
packages=""
[ -z "$have_browser" ] && packages="chromium"
command -v strace >/dev/null 2>&1 || packages="$packages strace"
[ -z "${packages// /}" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    echo "install_system_tools: missing $packages, and no apt-get as root to install it: the tests that need them will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! { timeout 300 apt-get update -qq && timeout 900 apt-get install -y -qq --no-install-recommends $packages; } >/dev/null 2>&1; then
    echo "install_system_tools: apt-get could not install $packages: the tests that need them will skip" >&2
fi
exit 0
