#!/usr/bin/env bash
# The Autobahn|Testsuite fuzzing client against the server's test-only echo route
# (`/ws-echo`, which shares `/ws`'s frame handling: src/realtime/frames.rs).
#
# Every case must come out OK, NON-STRICT or INFORMATIONAL, and every case's close
# (`behaviorClose`) OK or INFORMATIONAL: the TCP connection really closed after a protocol
# error. Cases 12.* and 13.* (permessage-deflate) are excluded: the server does not offer it.
#
# The suite needs Python 2.7. Without one this prints `SKIP: Autobahn|Testsuite (no Python 2.7)`
# and exits 0. With one, it makes a virtualenv under target/autobahn/ and installs the suite
# there, every package pinned (the last releases that still run on 2.7).
#
# Usage: bash tests/autobahn/run.sh   (report: target/autobahn/report/index.html)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
export PATH="$HOME/.cargo/bin:$PATH"

# A Python 2.7 that runs: `python2.7` (a pyenv shim may exist without the version active),
# else pyenv's own 2.7 builds.
PY2=""
for candidate in "${PYTHON2:-}" python2.7 "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/2.7*/bin/python2.7; do
  if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (2, 7)' >/dev/null 2>&1; then
    PY2=$(command -v "$candidate")
    break
  fi
done
if [ -z "$PY2" ]; then
  echo "SKIP: Autobahn|Testsuite (no Python 2.7)"
  exit 0
fi

WORK="$ROOT/target/autobahn"
VENV="$WORK/venv"
mkdir -p "$WORK"

# virtualenv itself, for 2.7 (20.15.1 still runs there) with what it needs, installed beside
# the venv. The venv is made again whenever requirements.txt changes.
VIRTUALENV_PACKAGES=(virtualenv==20.15.1 configparser==4.0.2 contextlib2==0.6.0.post1
  distlib==0.4.4 filelock==3.2.1 importlib-metadata==2.1.3 importlib-resources==3.3.1
  pathlib2==2.3.7.post1 platformdirs==2.0.2 scandir==1.10.0 singledispatch==3.7.0 six==1.17.0
  typing==3.10.0.0 zipp==1.2.0)
if ! cmp -s tests/autobahn/requirements.txt "$VENV/requirements.txt"; then
  echo "==> installing autobahntestsuite 0.8.2 in $VENV (Python $("$PY2" -c 'import platform; print(platform.python_version())'))"
  rm -rf "$VENV" "$WORK/virtualenv"
  "$PY2" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --no-deps --target "$WORK/virtualenv" "${VIRTUALENV_PACKAGES[@]}"
  PYTHONPATH="$WORK/virtualenv" "$PY2" -m virtualenv --quiet "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps \
    -r tests/autobahn/requirements.txt
  cp tests/autobahn/requirements.txt "$VENV/requirements.txt"
fi

step() { printf '==> %s\n' "$*"; }

step "building the server"
cargo build --locked --bin tertulia

PORT=$("$PY2" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DATA=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$DATA"
}
trap cleanup EXIT

# Limits raised for the suite: its 9.* cases send messages of up to 16 MiB, fragments as
# small as 64 bytes (65,536 frames for one message) and a thousand messages in a row.
step "starting the server with the echo route on port $PORT"
RUST_LOG=warn "$ROOT/target/debug/tertulia" serve \
  --bind "127.0.0.1:$PORT" \
  --database-url "$DATA/autobahn.db" \
  --web-dir "$ROOT/web" \
  --ws-echo-for-tests \
  --ws-max-frame-bytes 16777216 \
  --ws-rate-per-sec 10000000 \
  --ws-rate-burst 10000000 \
  --ws-outbound-queue 100000 \
  >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    break
  fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    cat "$WORK/server.log"
    echo "the server did not start" >&2
    exit 1
  fi
  sleep 0.2
done

REPORT="$WORK/report"
rm -rf "$REPORT"
sed -e "s|@PORT@|$PORT|" -e "s|@OUTDIR@|$REPORT|" tests/autobahn/fuzzingclient.json \
  >"$WORK/fuzzingclient.json"
step "wstest -m fuzzingclient (cases: see tests/autobahn/fuzzingclient.json)"
# Bounded: about 30 s here (2 cores, the 9.* cases with 16 MiB messages included).
(cd "$WORK" && timeout -k 10 600 "$VENV/bin/wstest" -m fuzzingclient -s "$WORK/fuzzingclient.json") \
  >"$WORK/wstest.log" 2>&1 || {
  tail -20 "$WORK/wstest.log"
  echo "wstest failed" >&2
  exit 1
}

# Every case's verdict, and the close's.
"$VENV/bin/python" - "$REPORT/index.json" <<'PY'
import json, sys
from collections import Counter

cases = json.load(open(sys.argv[1]))["tertulia"]
behaviors, closes, bad = Counter(), Counter(), []
for case in sorted(cases, key=lambda c: [int(p) for p in c.split(".")]):
    result = cases[case]
    behaviors[result["behavior"]] += 1
    closes[result["behaviorClose"]] += 1
    if result["behavior"] not in ("OK", "NON-STRICT", "INFORMATIONAL") or \
            result["behaviorClose"] not in ("OK", "INFORMATIONAL"):
        bad.append("%s: %s, close %s (remote close code %s)" % (
            case, result["behavior"], result["behaviorClose"], result.get("remoteCloseCode")))
summary = lambda c: ", ".join("%s %d" % kv for kv in sorted(c.items()))
print("Autobahn|Testsuite: %d cases: %s; closes: %s" % (len(cases), summary(behaviors), summary(closes)))
for line in bad:
    print("  FAILED " + line)
sys.exit(1 if bad else 0)
PY
