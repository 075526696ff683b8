#!/usr/bin/env bash
# First step of `npm test`: make this machine able to run every test, so the README's test command passes
# on a fresh Debian 12 + Node 20 machine after `npm install` alone. Idempotent, and a fast no-op (one
# dpkg-query, one node process) when everything is already there.
#
#   1. Debian packages the tests need; installed with apt-get only when missing and only as root
#      (otherwise: the exact command to run, and a non-zero exit).
#   2. Native addons that npm does not build (.npmrc sets ignore-scripts=true; scripts/install-scripts.json
#      says why per package); built only when they do not load in this Node (a binary built for another
#      Node ABI fails to load, so it is rebuilt).
# The private D-Bus session with an unlocked keyring is not started here: `npm test` runs vitest inside
# `dbus-run-session -- bash scripts/keyring-session.sh`, which needs the packages below.
#
# Usage: bash scripts/setup-test-env.sh [--dry-run]   (--dry-run: report what would be done, change nothing)
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=0
[[ "${1:-}" == "--dry-run" ]] && dry_run=1

# Debian packages: libsecret headers to build keytar; gnome-keyring + dbus for a real Secret Service;
# openssl for the test CA; libFuzzer (libclang-rt-14-dev) and g++ for the Jazzer.js fuzzing addon; curl,
# git and Python requests as the unchanged clients of the HTTPS proxy tests (test/e2e/https-proxy);
# chromium for the dashboard browser tests (driven by playwright-core, no browser download); redis-server
# and postgresql for the fleet-mode tests (each test starts its own server on loopback).
apt_pkgs=(libsecret-1-dev gnome-keyring dbus dbus-x11 openssl libclang-rt-14-dev g++ curl git python3-requests chromium redis-server postgresql)

# Native addons, one per line: "<build command>|<module that must load once built>". The module is
# loaded with require() from the repository root (a package name or a ./path).
# To add an addon: one more line here, e.g. "scripts/build-addon.sh <name>|<module or ./path/x.node>".
addons=(
  "scripts/build-addon.sh argon2|argon2"
  "scripts/build-addon.sh keytar|keytar"
  "scripts/build-addon.sh dumpable|./native/dumpable/build/Release/dumpable.node"
  "scripts/build-jazzer.sh|./node_modules/@jazzer.js/fuzzer/dist/addon.js"
)

say() { echo "setup-test-env: $*" >&2; }

# --- 1. Debian packages -----------------------------------------------------------------------------
if command -v dpkg-query >/dev/null 2>&1; then
  # One dpkg-query for all: prints "<name> <status>" for known packages, an error line for unknown ones.
  installed="$(dpkg-query -W -f='${Package} ${Status}\n' "${apt_pkgs[@]}" 2>/dev/null || true)"
  missing=()
  for pkg in "${apt_pkgs[@]}"; do
    grep -qxF "${pkg%%:*} install ok installed" <<<"$installed" || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
    if ((dry_run)); then
      say "would run: $cmd"
    elif [[ "$(id -u)" -ne 0 ]]; then
      say "missing Debian packages: ${missing[*]}"
      say "run as root: $cmd"
      exit 1
    else
      say "installing Debian packages: ${missing[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
  fi
else
  say "not a Debian system (no dpkg-query): make sure these (or their equivalents) are installed: ${apt_pkgs[*]}"
fi

# --- 2. Native addons --------------------------------------------------------------------------------
modules=()
for a in "${addons[@]}"; do modules+=("${a#*|}"); done
# One child process loads them all: the fast path. A child, because a bad binary can crash the process
# that loads it rather than throw; on any failure each addon is checked (and built) on its own.
# (The inner bash, rather than the node call alone, keeps this shell from printing "Segmentation fault".)
loads() { bash -c 'node -e "for (const m of process.argv.slice(1)) require(m)" "$@"; exit $?' _ "$@" >/dev/null 2>&1; }
if loads "${modules[@]}"; then exit 0; fi

for a in "${addons[@]}"; do
  build="${a%|*}" module="${a#*|}"
  if loads "$module"; then continue; fi
  if ((dry_run)); then
    say "would build: bash $build (does not load: $module)"
    continue
  fi
  # shellcheck disable=SC2086 # the build command's words are its script and arguments
  bash $build
  loads "$module" || {
    say "$module still does not load after 'bash $build' (is its npm package installed? run npm install)"
    exit 1
  }
done
