# Cross-compiling for Debian armhf (arm-linux-gnueabihf) with Debian's multiarch packages:
# crossbuild-essential-armhf, the dependencies' :armhf -dev packages, and
# qemu-user-static to run what is built (sh .ci/setup cross installs them).
#   cmake -B build-armhf -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-armhf.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE arm-linux-gnueabihf)
# ctest (and try_run) run the target's programs under emulation: binfmt
# need not be registered.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-arm-static)
# The target's .pc files only (the build's pkg-config is the host's).
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/arm-linux-gnueabihf/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")
# Libraries are found in /usr/lib/<triplet> (CMAKE_LIBRARY_ARCHITECTURE);
# programs (protoc-c, lua5.4, busted, python3) are the host's.
