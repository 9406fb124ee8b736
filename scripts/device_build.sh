#!/usr/bin/env bash
# Builds the CLI on the device machine (which has nvcc, cmake and a compiler but none of our
# Debian dev libraries): unpacks the .debs carried in .debs/ (made here with `apt-get download`
# of libsndfile1(-dev), libsamplerate0(-dev), libcli11-dev, nlohmann-json3-dev and their
# libraries; .debs/ is git-ignored) and builds $MW_BUILD_DIR/bin/mambawave against them (and
# $MW_BUILD_DIR/bin/mw_tests with MW_BUILD_TESTS=ON).
# Source it: `. scripts/device_build.sh` leaves MW pointing at the binary.
# MW_BUILD_DIR (default /tmp/b) lets a second build run beside a first one; the .debs are
# unpacked once per machine (a running build's libraries are never pulled from under it).
D=/tmp/deb
LIB=$D/usr/lib/x86_64-linux-gnu
if [[ ! -f $D/.unpacked ]]; then
  rm -rf $D; mkdir -p $D
  for f in .debs/*.deb; do dpkg -x $f $D; done
  for pc in $(find $D -name '*.pc'); do sed -i "s|^prefix=/usr|prefix=$D/usr|; s|-I/usr/include|-I$D/usr/include|; /^Requires.private/d" $pc; done
  touch $D/.unpacked
fi
BD=${MW_BUILD_DIR:-/tmp/b}
export PKG_CONFIG_PATH=$LIB/pkgconfig:$D/usr/share/pkgconfig LD_LIBRARY_PATH=$LIB:${LD_LIBRARY_PATH:-}
PKC=$(command -v pkg-config || echo $D/usr/bin/pkgconf)
command -v ninja >/dev/null || export PATH=$PATH:$D/usr/bin
cmake -S . -B $BD -G Ninja -DCMAKE_BUILD_TYPE=Release -DMW_BUILD_TESTS=${MW_BUILD_TESTS:-OFF} -DMW_BUILD_PLUGIN=OFF -DMW_WITH_CUDA=${MW_WITH_CUDA:-ON} \
  -DCMAKE_PREFIX_PATH=$D/usr -DPKG_CONFIG_EXECUTABLE=$PKC \
  -DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath-link,$LIB -Wl,-rpath,$LIB" >$BD.cfg.log 2>&1 || { tail -30 $BD.cfg.log; return 1 2>/dev/null || exit 1; }
# The CLI first, then (MW_BUILD_TESTS=ON) the tests, so a failing test build leaves the CLI usable.
for target in mambawave $([[ ${MW_BUILD_TESTS:-OFF} == ON ]] && echo mw_tests); do
  cmake --build $BD -j16 --target $target > $BD/build_$target.log 2>&1
  grep -E "error|FAILED" $BD/build_$target.log | head -20; tail -1 $BD/build_$target.log
done
MW=$BD/bin/mambawave
