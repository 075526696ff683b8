#!/usr/bin/env bash
# Run a command against a real, freshly unlocked Secret Service (gnome-keyring) so the keychain key
# provider can be tested for real on Linux CI.
#
# Usage (needs: apt-get install -y libsecret-1-dev gnome-keyring dbus-x11):
#   dbus-run-session -- bash scripts/keyring-session.sh npx vitest run test/contracts
#
# dbus-run-session gives the command a private session bus; this script starts gnome-keyring-daemon on
# that bus with a throwaway HOME-local keyring, unlocks it with a throwaway password, runs the command,
# then stops the daemon. Nothing touches the user's real keyring.
set -euo pipefail

if [[ $# -eq 0 ]]; then
  echo "usage: dbus-run-session -- bash $0 <command> [args...]" >&2
  exit 2
fi
if [[ -z "${DBUS_SESSION_BUS_ADDRESS:-}" ]]; then
  echo "keyring-session: no session bus; run me under 'dbus-run-session -- bash $0 ...'" >&2
  exit 2
fi
if ! command -v gnome-keyring-daemon >/dev/null 2>&1; then
  echo "keyring-session: gnome-keyring-daemon not found (apt-get install -y gnome-keyring)" >&2
  exit 2
fi

keyring_home="$(mktemp -d "${TMPDIR:-/tmp}/aivault-keyring.XXXXXX")"
export XDG_DATA_HOME="$keyring_home/data"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$keyring_home/run}"
mkdir -p "$XDG_DATA_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"

# --unlock reads the password from stdin and creates/unlocks the default "login" keyring.
eval "$(printf '%s' 'aivault-test-keyring' | gnome-keyring-daemon --unlock --components=secrets)"
eval "$(gnome-keyring-daemon --start --components=secrets)"
export GNOME_KEYRING_CONTROL

cleanup() {
  if [[ -n "${GNOME_KEYRING_PID:-}" ]]; then kill "$GNOME_KEYRING_PID" 2>/dev/null || true; fi
  rm -rf "$keyring_home"
}
trap cleanup EXIT

export AIVAULT_TEST_KEYRING=1
set +e
"$@"
status=$?
set -e
exit "$status"
