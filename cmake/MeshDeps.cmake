# Every library meshd links, found through pkg-config (Debian's -dev packages
# ship .pc files for all of them; so does Homebrew on macOS).
find_package(PkgConfig REQUIRED)
set(THREADS_PREFER_PTHREAD_FLAG ON)
find_package(Threads REQUIRED)
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

# The verbs API is optional: without it the RDMA transport is left out and
# the node runs on TCP alone (HAVE_IBVERBS is the feature macro). On Linux it
# is rdma-core's libibverbs; on macOS, Apple's librdma from the SDK (RDMA over
# Thunderbolt 5, macOS 26.2 and later), which offers the same verbs calls.
# Either way the parts link the interface target mesh_verbs.
set(MESH_HAVE_IBVERBS OFF)
add_library(mesh_verbs INTERFACE)
if(MESH_RDMA AND APPLE)
  find_library(APPLE_RDMA_LIB NAMES rdma)
  find_path(APPLE_VERBS_INCLUDE NAMES infiniband/verbs.h)
  if(APPLE_RDMA_LIB AND APPLE_VERBS_INCLUDE)
    target_link_libraries(mesh_verbs INTERFACE ${APPLE_RDMA_LIB})
    target_include_directories(mesh_verbs INTERFACE ${APPLE_VERBS_INCLUDE})
    set(MESH_HAVE_IBVERBS ON)
  endif()
elseif(MESH_RDMA)
  pkg_check_modules(IBVERBS IMPORTED_TARGET libibverbs)
  if(IBVERBS_FOUND)
    target_link_libraries(mesh_verbs INTERFACE PkgConfig::IBVERBS)
    set(MESH_HAVE_IBVERBS ON)
  endif()
endif()
message(STATUS "meshd: RDMA transport: ${MESH_HAVE_IBVERBS}")
