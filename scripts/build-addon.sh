#!/usr/bin/env bash
# Build node-gyp addons from the C/C++ sources in their npm packages, against the local Node headers (no
# download), for packages whose shipped binary is missing or unusable here. Dependency install scripts are
# off (.npmrc), so this is where that build happens; scripts/install-scripts.json says why per package.
#   keytar: its install script downloads a prebuild from GitHub (needs libsecret-1-dev);
#   argon2: its linux-x64 glibc prebuild segfaults on load on Debian 12 (its install script would have
#           compiled it after that failed load).
# Our own addons live in native/<name> (not npm packages): `dumpable` is aivaultd's prctl(PR_SET_DUMPABLE, 0),
# which the daemon refuses to start without on Linux (src/front/dumpable.ts).
# Safe to re-run: a package that already loads is left alone; a package that is not installed is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
gyp="$(dirname "$(command -v npm)")/../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"
[ -f "$gyp" ] || gyp="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
nodedir="$(dirname "$(dirname "$(command -v node)")")"
for pkg in "$@"; do
  if [ -f "native/$pkg/binding.gyp" ]; then
    dir="native/$pkg"
    mod="./native/$pkg/build/Release/$pkg.node"
  else
    [ -d "node_modules/$pkg" ] || { echo "$pkg not installed; skipping"; continue; }
    dir="node_modules/$pkg"
    mod="$pkg"
  fi
  # A child process, because a bad binary can crash the process that loads it rather than throw.
  if bash -c "node -e \"require('$mod')\"; exit \$?" >/dev/null 2>&1; then continue; fi
  log="$(mktemp)"
  (cd "$dir" && node "$gyp" rebuild --nodedir="$nodedir" >"$log" 2>&1) || { cat "$log"; exit 1; }
  rm -f "$log"
  node -e "require('$mod')" && echo "$pkg built from source"
done
