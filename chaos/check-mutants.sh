#!/usr/bin/env bash
# Checks that the chaos checker still catches the bugs in chaos/bugs/*.patch (see chaos/README.md).
#
#   chaos/check-mutants.sh [--duration=SECONDS (default 30)] [--seed=N (default 2026)] [--clean] [--check-only] [patch ...]
#
# For every patch (default: all of chaos/bugs/*.patch): checks that it applies to HEAD, then, in a scratch
# worktree of HEAD with the patch applied (node_modules symlinked), runs `tsx chaos/run.ts` and requires at
# least one violation of a rule named on the patch's `Caught-by:` line. Exits 1 when a patch no longer applies
# or a mutant is not caught (or its run failed). `--clean` also runs unmodified HEAD and requires 0
# violations; `--check-only` only checks that every patch applies (seconds, no run). Runs are sequential:
# each one starts its own PostgreSQL, 3 workers and 4 app processes.
set -uo pipefail

root=$(git rev-parse --show-toplevel) || exit 2
duration=30
seed=2026
clean=0
check_only=0
patches=()
for a in "$@"; do
  case "$a" in
    --duration=*) duration=${a#--duration=} ;;
    --seed=*) seed=${a#--seed=} ;;
    --clean) clean=1 ;;
    --check-only) check_only=1 ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "check-mutants: unknown option $a" >&2; exit 2 ;;
    *) [ -f "$a" ] || { echo "check-mutants: no patch $a" >&2; exit 2; }; patches+=("$(realpath "$a")") ;;
  esac
done
cd "$root" || exit 2
[ ${#patches[@]} -gt 0 ] || patches=("$root"/chaos/bugs/*.patch)

head=$(git rev-parse --short HEAD)
failed=0
declare -a report

# 1. Every patch applies to HEAD (checked against HEAD's tree in a scratch index, whatever the work tree holds).
index=$(mktemp)
trap 'rm -f "$index"' EXIT
GIT_INDEX_FILE=$index git read-tree HEAD
for p in "${patches[@]}"; do
  if ! grep -q '^Caught-by: ' "$p"; then
    echo "check-mutants: ${p#"$root"/} has no 'Caught-by:' line (the rules that must catch it)" >&2
    failed=1
  elif ! GIT_INDEX_FILE=$index git apply --cached --check "$p"; then
    echo "check-mutants: ${p#"$root"/} no longer applies to HEAD ($head): redo it against today's code (chaos/README.md)" >&2
    failed=1
  fi
done
if [ "$check_only" = 1 ] || [ "$failed" = 1 ]; then
  [ "$failed" = 0 ] && echo "check-mutants: all ${#patches[@]} patches apply to HEAD ($head)"
  exit "$failed"
fi

logs=$(mktemp -d /tmp/chaos-mutants.XXXXXX)
wt=""
cleanup() {
  [ -n "$wt" ] && git worktree remove --force "$wt" >/dev/null 2>&1
  rm -f "$index"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs chaos in a worktree of HEAD with patch $2 applied ("" for none); sets `kinds` ("kind=n ...") and `rc`.
run_one() {
  local name=$1 patch=$2 out="$logs/$1.out" t0=$SECONDS
  kinds="" secs=0 rc=2
  wt=$(mktemp -d "/tmp/wt-chaos-$name.XXXXXX")
  if git worktree add --detach "$wt" HEAD >/dev/null 2>&1 && ln -s "$root/node_modules" "$wt/node_modules" &&
    { [ -z "$patch" ] || git -C "$wt" apply "$patch"; }; then
    (cd "$wt" && node_modules/.bin/tsx chaos/run.ts --duration="$duration" --seed="$seed" >"$out" 2>"$logs/$name.err")
    rc=$?
    # The summary's "violations: N" line is followed by one "  kind: n" line per rule.
    kinds=$(awk '/^violations: /{v=1; next} v && /^  [a-z-]+: [0-9]+$/{printf "%s=%s ", substr($1, 1, length($1)-1), $2; next} v{v=0}' "$out")
  else
    echo "check-mutants: could not set up a worktree of HEAD${patch:+ with $patch}" >&2
  fi
  secs=$((SECONDS - t0))
  git worktree remove --force "$wt" >/dev/null 2>&1 || rm -rf "$wt"
  wt=""
}

for p in "${patches[@]}"; do
  name=$(basename "$p" .patch)
  expected=$(sed -n 's/^Caught-by: //p' "$p" | head -1)
  echo "check-mutants: $name (expect one of: $expected), ${duration} s, seed $seed" >&2
  run_one "$name" "$p"
  caught=""
  for k in $expected; do
    n=$(tr ' ' '\n' <<<"$kinds" | sed -n "s/^$k=//p")
    [ -n "$n" ] && [ "$n" -gt 0 ] && caught+="$k=$n "
  done
  if [ "$rc" = 1 ] && [ -n "$caught" ]; then
    report+=("caught      $name (${secs} s): ${kinds% }")
  else
    failed=1
    report+=("NOT CAUGHT  $name (${secs} s, exit $rc): violations ${kinds:-none}; expected one of: $expected; log $logs/$name.err")
  fi
done

if [ "$clean" = 1 ]; then
  echo "check-mutants: clean HEAD, ${duration} s, seed $seed" >&2
  run_one clean ""
  if [ "$rc" = 0 ]; then
    report+=("clean       HEAD (${secs} s): 0 violations")
  else
    failed=1
    report+=("FAILED      HEAD (${secs} s, exit $rc): violations ${kinds:-none}; log $logs/clean.err")
  fi
fi

echo
echo "chaos mutants on $head (${duration} s each, seed $seed; outputs in $logs):"
printf '  %s\n' "${report[@]}"
exit "$failed"
