#!/usr/bin/env bash
# The consumer's side (issue 14): install Carbon into a prefix, then build an
# out-of-tree copy of samples/game_loop against it and run it.
#
#   run.sh install        SRC BUILD WORK     cmake --install BUILD --prefix WORK/prefix
#   run.sh find_package   SRC BUILD WORK     CMake find_package(carbon), carbon::carbon (shared)
#   run.sh pkgconfig-gcc  SRC BUILD WORK     gcc + `pkg-config carbon` (shared)
#   run.sh pkgconfig-clang SRC BUILD WORK    clang + `pkg-config --static carbon` + libcarbon.a
#   run.sh add_subdirectory SRC BUILD WORK   add_subdirectory(SRC) in the game's CMakeLists
#   run.sh deb            SRC BUILD WORK     cpack -G DEB, dpkg -x into a throwaway root, run its host
set -euo pipefail
way=$1 src=$(realpath "$2") build=$(realpath "$3") work=$4
mkdir -p "$work"; work=$(realpath "$work")
prefix=$work/prefix
game=$src/samples/game_loop
python=$(sed -n 's/^_Python3_EXECUTABLE:[A-Z]*=//p' "$build/CMakeCache.txt")
[ -x "$python" ] || { echo "FAIL: no Python3 executable in $build/CMakeCache.txt"; exit 1; }

run_game() {   # run_game EXE [args]: a short run must complete and report its frames
    local out
    out=$("$@" --frames 20 --entities 20 2>&1) || { echo "$out"; echo "FAIL: $* exited $?"; exit 1; }
    echo "$out" | tail -n 3
    grep -q "game_loop: 20 frames" <<<"$out" || { echo "$out"; echo "FAIL: no frames run"; exit 1; }
}

libdir_of() { find "$prefix" -name 'libcarbon.so.0' -printf '%h\n' | head -n 1; }
# A game linking libpython itself needs its directory at run time when it is
# not a system one (pyenv): the same run path CMake gives its targets.
pylibdir() { pkg-config --variable=libdir "$(pkg-config --print-requires carbon | awk '/^python-/{print $1}')"; }

case "$way" in
install)
    rm -rf "$prefix"
    cmake --install "$build" --prefix "$prefix" >/dev/null
    for f in include/carbon/carbon.h include/carbon/scheduler.h bin/carbon; do
        test -e "$prefix/$f" || { echo "FAIL: $f not installed"; exit 1; }
    done
    # Only the public headers: no internal header reaches the include dir.
    [ "$(ls "$prefix/include/carbon" | tr '\n' ' ')" = "carbon.h scheduler.h " ] \
        || { echo "FAIL: unexpected headers: $(ls "$prefix/include/carbon")"; exit 1; }
    readelf -d "$(libdir_of)/libcarbon.so.0" | grep -q 'SONAME.*libcarbon.so.0' || { echo "FAIL: soname"; exit 1; }
    # The installed host finds its packages relative to itself.
    "$prefix/bin/carbon" -c 'import scheduler, carbon; print("host ok", scheduler.__file__)'
    ;;
find_package|add_subdirectory)
    dir=$work/$way; rm -rf "$dir"; mkdir -p "$dir/src"
    cp "$game/game_loop.c" "$dir/src/"
    cp "$src/tests/consumer/CMakeLists.txt.in" "$dir/src/CMakeLists.txt"
    args=(-S "$dir/src" -B "$dir/build" -DCONSUMER_WAY="$way" -DGAME_DIR="$game"
          -DCMAKE_PREFIX_PATH="$prefix" -DPython3_EXECUTABLE="$python")
    [ "$way" = add_subdirectory ] && args+=(-DCARBON_SOURCE_DIR="$src")
    cmake "${args[@]}" >"$dir/configure.log" 2>&1 || { cat "$dir/configure.log"; exit 1; }
    cmake --build "$dir/build" -j "$(nproc)" >"$dir/build.log" 2>&1 || { cat "$dir/build.log"; exit 1; }
    if [ "$way" = add_subdirectory ]; then
        # A game that builds Carbon itself tells it where the packages are.
        run_game "$dir/build/game_loop" --package-dir "$dir/build/carbon/python"
        # Neither tests nor samples of Carbon were configured.
        ! grep -q 'test_capi\|CMOCKA_FOUND:INTERNAL=1' "$dir/build/CMakeCache.txt" \
            || { echo "FAIL: add_subdirectory configured Carbon's tests"; exit 1; }
    else
        run_game "$dir/build/game_loop"
    fi
    ;;
pkgconfig-gcc)
    dir=$work/$way; rm -rf "$dir"; mkdir -p "$dir"
    export PKG_CONFIG_PATH="$(libdir_of)/pkgconfig:$(dirname "$python")/../lib/pkgconfig:${PKG_CONFIG_PATH:-}"
    # shellcheck disable=SC2046
    gcc -std=c11 -Wall -Wextra -Werror -DGAME_LOOP_DIR="\"$game\"" "$game/game_loop.c" \
        -o "$dir/game_loop" $(pkg-config --cflags --libs carbon) -Wl,-rpath,"$(libdir_of)" -Wl,-rpath,"$(pylibdir)"
    readelf -d "$dir/game_loop" | grep -q 'NEEDED.*libcarbon.so.0' || { echo "FAIL: not linked to libcarbon.so.0"; exit 1; }
    run_game "$dir/game_loop"
    ;;
pkgconfig-clang)
    dir=$work/$way; rm -rf "$dir"; mkdir -p "$dir"
    export PKG_CONFIG_PATH="$(libdir_of)/pkgconfig:$(dirname "$python")/../lib/pkgconfig:${PKG_CONFIG_PATH:-}"
    libdir=$(pkg-config --variable=libdir carbon)
    # shellcheck disable=SC2046
    clang -std=c11 -Wall -Wextra -Werror -DGAME_LOOP_DIR="\"$game\"" "$game/game_loop.c" \
        -o "$dir/game_loop" $(pkg-config --cflags carbon) "$libdir/libcarbon.a" \
        $(pkg-config --static --libs carbon | sed 's/ -lcarbon / /') -Wl,-rpath,"$(pylibdir)"
    ! readelf -d "$dir/game_loop" | grep -q 'NEEDED.*libcarbon' || { echo "FAIL: linked to libcarbon.so"; exit 1; }
    # Statically linked outside the prefix: the game says where the packages are.
    run_game "$dir/game_loop" --package-dir "$(pkg-config --variable=pythondir carbon)"
    ;;
deb)
    dir=$work/deb; rm -rf "$dir"; mkdir -p "$dir/out" "$dir/root"
    (cd "$dir/out" && cpack -G DEB --config "$build/CPackConfig.cmake" >"$dir/cpack.log" 2>&1) \
        || { cat "$dir/cpack.log"; exit 1; }
    deb=$(ls "$dir"/out/*.deb)
    dpkg-deb -f "$deb" Package Version Depends
    dpkg-deb -f "$deb" Depends | grep -q "libpython3" || { echo "FAIL: no libpython dependency"; exit 1; }
    dpkg-deb -f "$deb" Depends | grep -q "libuv1" || { echo "FAIL: no libuv1 dependency"; exit 1; }
    dpkg -x "$deb" "$dir/root"
    # The host from the unpacked root, with the packages it finds beside itself.
    out=$("$dir/root/usr/bin/carbon" -c '
import scheduler, carbon
ch = scheduler.channel()
scheduler.tasklet(ch.send)("from the .deb")
print(ch.receive(), scheduler.__file__)')
    echo "$out"
    grep -q "^from the .deb $dir/root/usr/" <<<"$out" || { echo "FAIL: packages not from the unpacked root"; exit 1; }
    test -f "$(find "$dir/root" -name carbon.pc | head -n 1)" || { echo "FAIL: no carbon.pc in the .deb"; exit 1; }
    ;;
*) echo "usage: run.sh install|find_package|pkgconfig-gcc|pkgconfig-clang|add_subdirectory|deb SRC BUILD WORK"; exit 2 ;;
esac
echo "consumer $way: passed"
