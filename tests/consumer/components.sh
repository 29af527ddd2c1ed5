#!/usr/bin/env bash
# A tree configured without MongoDB (IOTBRIDGE_WITH_MONGODB=OFF, components
# mqtt and store only), installed, and its components' consumers built from it
# (tests/consumer/components: find_package COMPONENTS, and a plain compiler
# line from pkg-config iotbridge-mqtt). Proves that:
#  - a program of iotbridge::mqtt alone loads no libmongoc, libbson, libsqlite3
#    (nor libfmt): ldd shows none of them, and shows libmosquitto;
#  - open_store("mongodb://...") in that build says it has no MongoDB support.
# Usage: components.sh SOURCE_DIR WORK_DIR [C++ compiler launcher, e.g. ccache]
set -euo pipefail
src=$1 work=$2 launcher=${3:-}
mkdir -p "$work"
log="$work/log"
: >"$log"
trap 'status=$?; ((status)) && { echo "components consumer failed; its log:"; cat "$log"; }; exit $status' EXIT
gen=()
command -v ninja >>"$log" 2>&1 && gen=(-G Ninja)
# Release (no -g): ccache then hits whatever folder the tree is in.
cmake -S "$src" -B "$work/tree" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
  ${launcher:+-DCMAKE_CXX_COMPILER_LAUNCHER=$launcher} -DIOTBRIDGE_WITH_MONGODB=OFF \
  "-DIOTBRIDGE_COMPONENTS=mqtt;store" -DIOTBRIDGE_BUILD_TESTS=OFF -DIOTBRIDGE_BUILD_CLI=OFF \
  -DIOTBRIDGE_BUILD_EXAMPLES=OFF -DIOTBRIDGE_INSTALL=ON >>"$log" 2>&1
grep -q "MongoDB store backend off" "$log" || { echo "the tree did not report MongoDB off" >>"$log"; exit 1; }
cmake --build "$work/tree" >>"$log" 2>&1
rm -rf "$work/prefix" "$work/consumers"
cmake --install "$work/tree" --prefix "$work/prefix" >>"$log" 2>&1
cmake -S "$src/tests/consumer/components" -B "$work/consumers" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" >>"$log" 2>&1
cmake --build "$work/consumers" >>"$log" 2>&1

pc_dir=$(dirname "$(find "$work/prefix" -name iotbridge-mqtt.pc | head -n 1)")
# shellcheck disable=SC2046
"${CXX:-c++}" -o "$work/consumers/pkg_config_mqtt_consumer" "$src/tests/consumer/components/mqtt_main.cpp" \
  $(PKG_CONFIG_PATH="$pc_dir" pkg-config --cflags --libs iotbridge-mqtt) >>"$log" 2>&1

failed=0
for exe in mqtt_consumer pkg_config_mqtt_consumer; do
  out=$("$work/consumers/$exe")
  echo "$exe: $out"
  [[ $out == "mqtt consumer ok" ]] || failed=1
  libs=$(ldd "$work/consumers/$exe")
  echo "$libs" >>"$log"
  if grep -E "libmongoc|libbson|libsqlite3|libfmt" <<<"$libs"; then
    echo "$exe: ldd shows a database library (above); iotbridge::mqtt must not pull one in"
    failed=1
  elif ! grep -q libmosquitto <<<"$libs"; then
    echo "$exe: ldd does not show libmosquitto, so it proves nothing"
    failed=1
  else
    echo "$exe: ldd shows libmosquitto and no libmongoc, libbson, libsqlite3, libfmt"
  fi
done
out=$("$work/consumers/store_consumer")
echo "store_consumer: $out"
[[ $out == "store consumer ok" ]] || failed=1
if ldd "$work/consumers/store_consumer" | grep libmongoc; then
  echo "store_consumer of a build without MongoDB loads libmongoc"
  failed=1
fi
exit $failed
