# Every library meshd links, found through pkg-config (Debian's -dev packages
# ship .pc files for all of them; so does Homebrew on macOS).
find_package(PkgConfig REQUIRED)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
pkg_check_modules(PROTOBUFC REQUIRED IMPORTED_TARGET libprotobuf-c)
pkg_check_modules(LIBEVENT REQUIRED IMPORTED_TARGET libevent libevent_pthreads)
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
pkg_check_modules(SQLITE REQUIRED IMPORTED_TARGET sqlite3)
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)
# libcrypto (OpenSSL) for SHA-256/SHA-1 of downloads: SHA-NI makes it 5x libsodium's.
pkg_check_modules(LIBCRYPTO REQUIRED IMPORTED_TARGET libcrypto)
pkg_check_modules(LIBEDIT REQUIRED IMPORTED_TARGET libedit)
pkg_check_modules(INIH REQUIRED IMPORTED_TARGET inih)
pkg_check_modules(CMOCKA IMPORTED_TARGET cmocka)

find_program(PROTOC_C NAMES protoc-c protoc-gen-c REQUIRED)

# libibverbs is optional: without it the RDMA transport is left out and the
# node runs on TCP alone (HAVE_IBVERBS is the feature macro).
set(MESH_HAVE_IBVERBS OFF)
if(MESH_RDMA)
  pkg_check_modules(IBVERBS IMPORTED_TARGET libibverbs)
  if(IBVERBS_FOUND)
    set(MESH_HAVE_IBVERBS ON)
  endif()
endif()
message(STATUS "meshd: RDMA transport: ${MESH_HAVE_IBVERBS}")
