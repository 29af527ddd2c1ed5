#!/usr/bin/env bash
# Builds tests/consumer/project against iotbridge: MODE find_package installs
# the build tree into a temporary prefix first; MODE add_subdirectory uses the
# source tree directly. Usage: run.sh MODE SOURCE_DIR BUILD_DIR WORK_DIR [SANITIZE]
set -euo pipefail
mode=$1 src=$2 build=$3 work=$4 sanitize=${5:-}
rm -rf "$work"
mkdir -p "$work"
log="$work/log"
trap 'status=$?; ((status)) && { echo "consumer $mode failed; its log:"; cat "$log"; }; exit $status' EXIT
gen=()
command -v ninja >>"$log" 2>&1 && gen=(-G Ninja)
# An instrumented iotbridge needs the sanitizer runtime in the consumer's link too.
[[ -n $sanitize ]] && gen+=(-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=$sanitize -DIOTBRIDGE_SANITIZE=$sanitize)
if [[ $mode == find_package ]]; then
  cmake --install "$build" --prefix "$work/prefix" >>"$log" 2>&1
  test -f "$work/prefix/lib/pkgconfig/iotbridge.pc" || test -f "$work"/prefix/lib/*/pkgconfig/iotbridge.pc
  # The README's other way: a plain compiler line from `pkg-config --cflags --libs iotbridge`.
  pc_dir=$(dirname "$(find "$work/prefix" -name iotbridge.pc | head -n 1)")
  pc_flags=$(PKG_CONFIG_PATH="$pc_dir" pkg-config --cflags --libs iotbridge)
  "${CXX:-c++}" -o "$work/pkg-config-consumer" "$src/tests/consumer/project/main.cpp" \
    ${sanitize:+-fsanitize=$sanitize} $pc_flags >>"$log" 2>&1
  pc_out=$("$work/pkg-config-consumer")
  [[ $pc_out == "consumer ok" ]] || { echo "pkg-config consumer: $pc_out" >>"$log"; exit 1; }
  echo "pkg-config $pc_out"
  cmake -S "$src/tests/consumer/project" -B "$work/build" "${gen[@]}" -DMODE=find_package \
    -DCMAKE_PREFIX_PATH="$work/prefix" >>"$log" 2>&1
else
  cmake -S "$src/tests/consumer/project" -B "$work/build" "${gen[@]}" -DMODE=add_subdirectory \
    -DIOTBRIDGE_SOURCE="$src" >>"$log" 2>&1
fi
cmake --build "$work/build" >>"$log" 2>&1
out=$("$work/build/consumer")
echo "$out"
[[ $out == "consumer ok" ]]
