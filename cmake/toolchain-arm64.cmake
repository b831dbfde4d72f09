# Cross-compiling for Debian arm64 (aarch64-linux-gnu) with Debian's multiarch packages:
# crossbuild-essential-arm64, the dependencies' :arm64 -dev packages, and
# qemu-user-static to run what is built (sh .ci/setup cross installs them).
#   cmake -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-arm64.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# ctest (and try_run) run the target's programs under emulation: binfmt
# need not be registered.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static)
# The target's .pc files only (the build's pkg-config is the host's).
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")
# Libraries are found in /usr/lib/<triplet> (CMAKE_LIBRARY_ARCHITECTURE);
# programs (protoc-c, lua5.4, busted, python3) are the host's.
