# Runs node test files one at a time and tallies them: sourced by tests/browser/run.sh and
# tests/browser/net/run.sh. A file that times out or crashes without a summary counts as one
# failure at least.

passed=0
failed=0
failed_files=()

# node_test FILE LOG SECONDS [PREFIX...]: runs FILE under `timeout` (after PREFIX, e.g.
# `ip netns exec NS`), its output to the terminal and to LOG; returns its exit status.
node_test() {
  local file=$1 log=$2 secs=$3
  shift 3
  timeout -k 10 "$secs" "$@" node --test --test-reporter=spec --test-concurrency=1 "$file" 2>&1 | tee "$log"
  return "${PIPESTATUS[0]}"
}

# tally FILE LOG STATUS: adds a finished file's passes and failures (from LOG) to the tally.
tally() {
  local file=$1 log=$2 status=$3 p f
  p=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$log" | tail -1)
  f=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$log" | tail -1)
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
  if [ "$status" -ne 0 ]; then
    [ "${f:-0}" -eq 0 ] && failed=$((failed + 1))
    failed_files+=("$file (exit $status)")
  fi
}

# run_node_test FILE LOG SECONDS [PREFIX...]: node_test, then tally.
run_node_test() {
  local status=0
  node_test "$@" || status=$?
  tally "$1" "$2" "$status"
}

# report NAME: prints the failed files and `NAME: N passed, N failed`; fails if any did.
report() {
  printf '\n'
  local f
  for f in "${failed_files[@]}"; do echo "FAILED: $f"; done
  echo "$1: $passed passed, $failed failed"
  [ "$failed" -eq 0 ] && [ "${#failed_files[@]}" -eq 0 ]
}
