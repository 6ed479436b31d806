#!/usr/bin/env bash
# Debian packages the tests use: chromium (the dashboard/UI browser tests drive a headless Chromium
# through Playwright) and PostgreSQL's initdb/pg_ctl (the PostgreSQL storage tests start a private server).
# Installs only what is missing, and says so first: the install takes about a minute and is quiet.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
declare -A why=(
  [chromium]="headless browser for the dashboard and UI tests"
  [postgresql]="initdb/pg_ctl for the PostgreSQL storage tests"
)
echo "system-deps: installing Debian packages the tests need (about a minute, quiet):" >&2
for pkg in "${missing[@]}"; do echo "  - $pkg: ${why[$pkg]}" >&2; done
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}"; }
echo "system-deps: installed ${missing[*]}" >&2
