#!/usr/bin/env bash
# Build the optional keytar native module from source (npm skips its install script, and its prebuilt
# download needs the internet). Needs libsecret-1-dev. Safe to re-run; a failure leaves the keychain
# provider reporting "keytar unavailable" rather than breaking the install.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules/keytar ] || { echo "keytar not installed (optional); skipping"; exit 0; }
if node -e "require('keytar')" 2>/dev/null; then exit 0; fi
gyp="$(dirname "$(command -v npm)")/../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"
[ -f "$gyp" ] || gyp="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
nodedir="$(dirname "$(dirname "$(command -v node)")")"
(cd node_modules/keytar && node "$gyp" rebuild --nodedir="$nodedir" >/tmp/keytar-build.log 2>&1) || { cat /tmp/keytar-build.log; exit 1; }
node -e "require('keytar')" && echo "keytar built"
