#!/usr/bin/env bash
# Build @jazzer.js/fuzzer's native addon from the C++ sources in its npm package, linked against Debian's
# stock libFuzzer (libclang-rt-14-dev) through scripts/jazzer-compat/ (see the comment there for why).
# Needs g++ and libclang-rt-14-dev. Safe to re-run: does nothing when the addon already loads.
set -euo pipefail
cd "$(dirname "$0")/.."
pkg=node_modules/@jazzer.js/fuzzer
[ -d "$pkg" ] || { echo "@jazzer.js/fuzzer not installed; skipping"; exit 0; }
out="$pkg/build/Release/jazzerjs.node"
if [ -f "$out" ] && node -e "require('./$pkg/dist/addon.js')" 2>/dev/null; then exit 0; fi

libfuzzer="$(ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a 2>/dev/null | sort -V | tail -1)"
[ -n "$libfuzzer" ] || { echo "libFuzzer not found: apt-get install libclang-rt-14-dev" >&2; exit 1; }
node_inc="$(dirname "$(dirname "$(command -v node)")")/include/node"
[ -f "$node_inc/node_api.h" ] || { echo "Node headers not found at $node_inc" >&2; exit 1; }
addon_api="$(cd "$pkg" && node -p "require('node-addon-api').include_dir")"

mkdir -p "$(dirname "$out")"
g++ -shared -fPIC -O2 -std=c++17 -DNAPI_VERSION=4 -fexceptions \
  -I"$node_inc" -I"$pkg/$addon_api" -Iscripts/jazzer-compat \
  "$pkg"/*.cpp "$pkg"/shared/*.cpp scripts/jazzer-compat/libfuzzer-compat.cpp \
  -Wl,--whole-archive "$libfuzzer" -Wl,--no-whole-archive -lpthread \
  -o "$out"
node -e "require('./$pkg/dist/addon.js')" && echo "jazzer.js fuzzer addon built against $libfuzzer"
