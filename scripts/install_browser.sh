#!/usr/bin/env bash
# Headless Chromium for the report.html screenshot tests (tests/runtime/report/test_report_html.py).
# Installed here, outside the test run, from Debian's `chromium` package where this runs as root with
# apt-get; anywhere else it says so and the tests that need a browser skip with that reason.
set -u
for name in chromium chromium-browser google-chrome google-chrome-stable; do
    command -v "$name" >/dev/null 2>&1 && exit 0
done
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    echo "install_browser: no chromium, and no apt-get as root to install it: the report.html screenshot tests will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! { timeout 300 apt-get update -qq && timeout 900 apt-get install -y -qq --no-install-recommends chromium; } >/dev/null 2>&1; then
    echo "install_browser: apt-get could not install chromium: the report.html screenshot tests will skip" >&2
fi
exit 0
