#!/usr/bin/env bash
# Proves that README.md works as written:
#  1. its two commands exist and are executable, and .ci/run execs scripts/test
#     (they are not run here: the demo and the whole suite are too slow, and
#     scripts/test would run this test again);
#  2. its ```cpp programs (built by cmake/IotbridgeDocs.cmake from the README
#     text, with the project's warnings) run against a real Mosquitto: the
#     recorder stores three retained readings into SQLite and stops cleanly on
#     SIGTERM; the query program prints the expected readings;
#  3. its shell block marked `<!-- readme-test: cli -->` runs line by line
#     against that Mosquitto and prints exactly the block marked
#     `<!-- readme-test: cli-output -->`.
#
# The port: the README says localhost (port 1883); nothing here may assume that
# port is free, so the test's Mosquitto listens on localhost at a free port and
#  - the C++ recorder gets the broker URL as its first argument (the README
#    program reads it: mqtt://localhost:PORT);
#  - in the shell block, `-p PORT` is inserted right after each
#    `iotbridge-pub` / `iotbridge-sub` (every other word is run as written).
#
# Usage: readme_test.sh SOURCE_DIR CLI_DIR RECORDER_PROGRAM QUERY_PROGRAM
set -euo pipefail
src=$(realpath "$1") cli=$(realpath "$2") recorder=$(realpath "$3") query=$(realpath "$4")
readme=$src/README.md

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# ---- 1. the two commands ----
for script in scripts/demo scripts/test; do
  [[ -x $src/$script ]] || fail "$script is missing or not executable"
  grep -qF "$script" "$readme" || fail "README.md does not mention $script"
done
grep -qx 'exec scripts/test' "$src/.ci/run" || fail ".ci/run does not exec scripts/test"
echo "ok: scripts/demo and scripts/test are executable; .ci/run execs scripts/test"

# ---- a broker of our own ----
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
{
  # "localhost": Mosquitto binds every address the name resolves to (127.0.0.1
  # and ::1), as a client resolving localhost may try either.
  echo "listener $port localhost"
  echo "allow_anonymous true"
  echo "persistence false"
  [[ $(id -u) == 0 ]] && echo "user root"
} >"$work/mosquitto.conf"
"$mosquitto" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!)
for _ in $(seq 400); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
(echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null || fail "mosquitto did not start: $(cat "$work/mosquitto.log")"

export PATH=$cli:$PATH
db_count() { iotbridge-db --store sqlite:readings.db count iot_service sensors 2>/dev/null || echo 0; }

# ---- 2. the C++ programs ----
mkdir "$work/cpp"
cd "$work/cpp"
# Retained readings reach the recorder whenever it subscribes: no race with its start.
iotbridge-pub -p "$port" -q 1 -r -t iot/home1/kitchen/temperature -m 24.5
iotbridge-pub -p "$port" -q 1 -r -t iot/home1/living_room/temperature -m 23.9
iotbridge-pub -p "$port" -q 1 -r -t iot/home2/garage/co2 -m 612
"$recorder" "mqtt://localhost:$port" >recorder.out 2>recorder.err &
recorder_pid=$!
pids+=("$recorder_pid")
for _ in $(seq 600); do
  [[ $(db_count) == 3 ]] && break
  kill -0 "$recorder_pid" 2>/dev/null || break
  sleep 0.05
done
[[ $(db_count) == 3 ]] || fail "the README recorder did not store 3 readings: $(cat recorder.err)"
kill -TERM "$recorder_pid"
status=0
wait "$recorder_pid" || status=$?
[[ $status == 0 ]] || fail "the README recorder exited with $status after SIGTERM: $(cat recorder.err)"
[[ $(cat recorder.out) == "stored 3 readings" ]] || fail "the README recorder printed '$(cat recorder.out)'"
echo "ok: the README recorder stored 3 readings and stopped on SIGTERM"

"$query" >query.out
expected='{ "topic" : "iot/home1/kitchen/temperature", "value" : 24.5, "room" : "kitchen" }
{ "topic" : "iot/home2/garage/co2", "value" : 612.0, "room" : "garage" }'
diff <(echo "$expected") query.out || fail "the README query printed something else (above)"
echo "ok: the README query printed the readings above 24.1, sorted by value"

# ---- 3. the shell block ----
# The lines between the marker's fence and the closing fence.
block() {
  awk -v marker="<!-- readme-test: $1 -->" '
    $0 == marker { armed = 1; next }
    armed && /^```/ { if (inside) exit; inside = 1; next }
    inside { print }' "$readme"
}
commands=$(block cli)
expected=$(block cli-output)
[[ -n $commands ]] || fail "README.md has no block marked <!-- readme-test: cli -->"
[[ -n $expected ]] || fail "README.md has no block marked <!-- readme-test: cli-output -->"
mkdir "$work/cli"
cd "$work/cli"
# Clear the retained readings of part 2 so that only the README's own remain.
for t in iot/home1/kitchen/temperature iot/home1/living_room/temperature iot/home2/garage/co2; do
  iotbridge-pub -p "$port" -r -n -t "$t"
done
echo "$commands" | sed -E "s/^(iotbridge-(pub|sub))( |\$)/\\1 -p $port\\3/" >commands.sh
echo "running:"
cat commands.sh
timeout 60 bash -euo pipefail commands.sh >cli.out 2>cli.err || fail "the README shell block failed: $(cat cli.err)"
diff <(echo "$expected") cli.out || fail "the README shell block printed something else (above)"
echo "ok: the README shell block printed what the README says"
