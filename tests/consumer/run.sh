#!/usr/bin/env bash
# Builds tests/consumer/project against iotbridge: MODE find_package installs
# the build tree into a temporary prefix first; MODE add_subdirectory uses the
# source tree directly. Usage: run.sh MODE SOURCE_DIR BUILD_DIR WORK_DIR
set -euo pipefail
mode=$1 src=$2 build=$3 work=$4
rm -rf "$work"
mkdir -p "$work"
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
if [[ $mode == find_package ]]; then
  cmake --install "$build" --prefix "$work/prefix" >/dev/null
  test -f "$work/prefix/lib/pkgconfig/iotbridge.pc" || test -f "$work"/prefix/lib/*/pkgconfig/iotbridge.pc
  cmake -S "$src/tests/consumer/project" -B "$work/build" "${gen[@]}" -DMODE=find_package \
    -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
else
  cmake -S "$src/tests/consumer/project" -B "$work/build" "${gen[@]}" -DMODE=add_subdirectory \
    -DIOTBRIDGE_SOURCE="$src" >/dev/null
fi
cmake --build "$work/build" >/dev/null
out=$("$work/build/consumer")
echo "$out"
[[ $out == "consumer ok" ]]
