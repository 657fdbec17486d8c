"""Compiler flags shared by every magpool target (one place, as in abseil)."""

# Warnings are errors with both compilers; C11 plus the GNU/POSIX interfaces
# (mmap flags, pthread extensions) the library needs.
MAGPOOL_COPTS = [
    "-std=c11",
    "-D_GNU_SOURCE",
    "-Wall",
    "-Wextra",
    "-Werror",
    # Frame pointers everywhere but in leaf functions: the alloc/free fast
    # paths are leaves (their misses are tail calls), and a frame there costs
    # 3 of their ~20 instructions; every non-leaf frame stays walkable.
    "-fno-omit-frame-pointer",
    "-momit-leaf-frame-pointer",
]

# The library exports only what its public headers mark MAGPOOL_API.
MAGPOOL_LIB_COPTS = MAGPOOL_COPTS + [
    "-fvisibility=hidden",
    # The library defines magpool_alloc/magpool_free itself: magpool.h's
    # inline copies are for applications.
    "-DMAGPOOL_BUILDING_LIBRARY_",
    # Record the compiler flags in each compile unit's DW_AT_producer (gcc
    # does by default, clang does not), so the optimisation level of an
    # installed library can be read back (tests/install_test.sh checks -O2).
    "-grecord-gcc-switches",
]

# System libraries: Concurrency Kit for ck_epoch.  liburcu is reached only
# through the function table of the application's flavour, so the library
# itself does not link it; tests and programs that use a flavour do.
MAGPOOL_LINKOPTS = ["-lck", "-lpthread"]
URCU_LINKOPTS = ["-lurcu-memb", "-lurcu-common"]
