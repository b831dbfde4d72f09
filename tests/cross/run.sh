#!/bin/sh
# The cross part of `sh .ci/setup cross` (which installs what it needs and
# builds the native build/ first): for each ARCH, configures build-ARCH/
# with cmake/toolchain-ARCH.cmake and -DOPLOG_STATIC=ON, builds it, runs
# its ctest (C tests, specs, command tests and cross.portability, all
# under qemu-user: tests/cross/tests.cmake) and prints one summary line.
#   sh tests/cross/run.sh armhf arm64 s390x
# OPLOG_JOBS (default: nproc) sets -j for the build and ctest;
# OPLOG_CROSS_SPECS and OPLOG_CROSS_CLI (;-separated, may be empty) replace
# the lists of specs and command tests below; OPLOG_TEST_ORIGINS (default
# 100000) the size of sync.many_origins.
set -u
cd "$(dirname "$0")/../.."
jobs=${OPLOG_JOBS:-$(nproc 2>/dev/null || echo 2)}
[ -x build/oplog ] || { echo "cross: build/oplog (the native command) is missing" >&2; exit 2; }
# Spec subset and command tests under emulation: see tests/cross/README.md.
specs=${OPLOG_CROSS_SPECS-"module;open;define;transaction;lowlevel;read;replay_verify;keys;testing;format2;format1;errors;security;failures;sync"}
cli=${OPLOG_CROSS_CLI-"basics;keygen_init;dump;verify;replay;stats_head;keys;standalone;modules;security;sync"}
summary=""
failed=0
for arch in "$@"; do
  start=$(date +%s)
  dir=build-$arch
  log=$dir/cross.log
  mkdir -p "$dir"
  echo "== cross $arch: configure, build"
  ok=1
  if ! cmake -S . -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/toolchain-$arch.cmake" \
      -DCMAKE_BUILD_TYPE=MinSizeRel -DOPLOG_WERROR=ON -DOPLOG_STATIC=ON \
      -DOPLOG_TEST_AREAS="c;cross" -DOPLOG_NATIVE_BUILD="$PWD/build" \
      -DOPLOG_CROSS_SPECS="$specs" -DOPLOG_CROSS_CLI="$cli" >"$log" 2>&1 ||
    ! cmake --build "$dir" -j "$jobs" >>"$log" 2>&1; then
    tail -40 "$log" >&2
    ok=""
  fi
  built=$(date +%s)
  result="build failed"
  size="-"
  if [ -n "$ok" ]; then
    echo "== cross $arch: ctest under $(sed -n 's/^set(CMAKE_CROSSCOMPILING_EMULATOR \(.*\))$/\1/p' "cmake/toolchain-$arch.cmake")"
    # sync.many_origins at a tenth of its native size: the behaviour is the
    # same, and its cost (90 s under qemu-arm at 10^6) is the native run's to check
    (cd "$dir" && OPLOG_TEST_ORIGINS=${OPLOG_TEST_ORIGINS-100000} ctest -j "$jobs" --timeout 900 --output-on-failure) \
      >>"$log" 2>&1 || ok=""
    grep -E "^[0-9]+% tests passed|^The following tests FAILED|^[[:space:]]+[0-9]+ - .*\((Failed|Timeout|Not Run|SEGFAULT|Subprocess)" "$log" || true
    result=$(sed -n 's/^[0-9]*% tests passed, \([0-9]*\) tests* failed out of \([0-9]*\)$/\2 tests, \1 failed/p' "$log" | tail -1)
    [ -n "$result" ] || result="ctest did not finish"
    triplet=$(sed -n 's/^set(CMAKE_LIBRARY_ARCHITECTURE \(.*\))$/\1/p' "cmake/toolchain-$arch.cmake")
    if "$triplet-strip" -o "$dir/oplog.stripped" "$dir/oplog"; then
      size="$(($(wc -c <"$dir/oplog.stripped") / 1024)) KiB"
    fi
  fi
  end=$(date +%s)
  [ -n "$ok" ] || failed=1
  line="cross $arch: $([ -n "$ok" ] && echo PASS || echo FAIL), $result; static $dir/oplog $size stripped; build $((built - start)) s, tests $((end - built)) s (log: $log)"
  echo "$line"
  summary="$summary$line
"
done
printf '\n%s' "$summary"
exit $failed
