#!/usr/bin/env bash
# README's "Quick start from a clone": its two commands as written there (the block marked
# `<!-- snippet: quick-start -->`, read from the clone's README), with no DATABASE_URL, from a fresh clone
# inside a mode-700 directory (what `mktemp -d` and /root give). As root, PostgreSQL runs as the user
# `postgres`, who cannot enter such a directory: `npm start` must still come up, answer 200 on the app URL it
# prints and stop on Ctrl-C (SIGINT to its process group), and `npm test` must pass.
#
# Usage: scripts/check-private-clone.sh [repository]   (default: this checkout; its committed HEAD is cloned)
set -euo pipefail
repo=$(cd "${1:-$(dirname "$0")/..}" && pwd)
parent=$(mktemp -d) # mode 700
clone="$parent/x"
log="$parent/start.log"
pgid=""
data=""

say() { echo "check-private-clone: $*"; }
fail() {
  say "FAILED: $*" >&2
  if [ -s "$log" ]; then sed 's/^/  npm start | /' "$log" >&2; fi
  exit 1
}
cleanup() {
  if [ -n "$pgid" ] && kill -0 -- "-$pgid" 2>/dev/null; then kill -KILL -- "-$pgid" 2>/dev/null || true; fi
  # npm start's data, when it had to move out of the private clone.
  case "$data" in /var/lib/pg-edge-session/?*) rm -rf -- "$data" ;; esac
  rm -rf -- "$parent"
}
trap cleanup EXIT

start_time=$(date +%s)
say "as $(id -un), clone of $(git -C "$repo" rev-parse --short HEAD) in $parent (mode $(stat -c %a "$parent"))"
git clone -q "$repo" "$clone"
cd "$clone"
# The block's commands: its non-empty lines that are not comments (each line's own comment is left to bash).
mapfile -t quick < <(awk '/^<!-- snippet: quick-start -->$/ { m = 1; next } m && /^```/ { if (f) exit; f = 1; next } f && NF && $1 !~ /^#/' README.md)
[ "${#quick[@]}" = 2 ] || fail "README's quick-start block: expected two commands (install and start, test), got ${#quick[@]}"
case "${quick[0]}" in *"npm start"*) ;; *) fail "README's quick-start block: the first command does not run npm start: ${quick[0]}" ;; esac
say "README: ${quick[0]%%#*}/ ${quick[1]%%#*}"

# The first command (npm install && npm start) as a user runs it in a terminal, in its own process group (a
# background job of a script is no group leader, so setsid runs it in place: its pid is the group's id).
env -u DATABASE_URL PORT=0 WORKER_PORT=0 setsid bash -c "${quick[0]}" >"$log" 2>&1 &
pgid=$!
url=""
for _ in $(seq 1 600); do
  url=$(sed -n 's/^ *Example app: *\(http[^ ]*\).*/\1/p' "$log" | head -n 1)
  [ -n "$url" ] && break
  kill -0 "$pgid" 2>/dev/null || fail "npm start exited before printing the app URL"
  sleep 1
done
[ -n "$url" ] || fail "npm install && npm start printed no app URL within 600 s"
data=$(sed -n 's/^ *Database: .*(data in \(.*\))$/\1/p' "$log" | head -n 1)
[ -n "$data" ] || fail "npm start did not say where its data is"
if [ "$(id -u)" = 0 ]; then
  case "$data" in /var/lib/pg-edge-session/?*) ;; *) fail "as root, the data should have moved under /var/lib/pg-edge-session, not $data" ;; esac
fi
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "$url" || true)
[ "$code" = 200 ] || fail "GET $url answered '$code', not 200"
say "npm start: GET $url -> 200, data in $data"

kill -INT -- "-$pgid"
for _ in $(seq 1 30); do
  kill -0 -- "-$pgid" 2>/dev/null || break
  sleep 1
done
kill -0 -- "-$pgid" 2>/dev/null && fail "npm start still running 30 s after SIGINT"
rc=0
wait "$pgid" || rc=$?
pgid=""
# npm reports a Ctrl-C as 130 (128 + SIGINT) whatever its script returned; the script's own clean shutdown
# shows in its 'Stopped.' line (test-e2e checks its exit code).
case "$rc" in 0 | 130) ;; *) fail "npm start exited with $rc after SIGINT" ;; esac
grep -q '^Stopped\.$' "$log" || fail "npm start did not report 'Stopped.'"
if pgrep -f -- "-D $data" >/dev/null; then fail "a PostgreSQL on $data is still running"; fi
say "npm start: stopped cleanly on SIGINT"

# The second command (npm test) as written.
if ! env -u DATABASE_URL bash -c "${quick[1]}" >"$parent/test.log" 2>&1; then
  tail -n 60 "$parent/test.log" >&2
  fail "npm test (embedded PostgreSQL) failed"
fi
sed 's/\x1b\[[0-9;]*m//g' "$parent/test.log" | sed -n 's/^ *\(Test Files\|Tests\) \+/check-private-clone: npm test: \1 /p'
say "passed in $(($(date +%s) - start_time)) s"
