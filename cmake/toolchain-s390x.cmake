# Cross-compiling for Debian s390x (s390x-linux-gnu) with Debian's multiarch packages:
# crossbuild-essential-s390x, the dependencies' :s390x -dev packages, and
# qemu-user-static to run what is built (sh .ci/setup cross installs them).
#   cmake -B build-s390x -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-s390x.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR s390x)
set(CMAKE_C_COMPILER s390x-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE s390x-linux-gnu)
# ctest (and try_run) run the target's programs under emulation: binfmt
# need not be registered.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-s390x-static)
# The target's .pc files only (the build's pkg-config is the host's).
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/s390x-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")
# Libraries are found in /usr/lib/<triplet> (CMAKE_LIBRARY_ARCHITECTURE);
# programs (protoc-c, lua5.4, busted, python3) are the host's.
