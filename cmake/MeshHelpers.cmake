# Compiler flags and the helpers every part uses to declare its library,
# its tests and its fuzz targets.

set(MESH_WARNINGS -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes
    -Wmissing-prototypes -Wformat=2 -Wvla -Wno-unused-parameter)
if(MESH_WERROR)
  list(APPEND MESH_WARNINGS -Werror)
endif()

# ThreadSanitizer cannot share a process with ASan or with the fuzzers'
# sanitizers: one flavour each.
if(MESH_TSAN AND (MESH_SANITIZE OR MESH_FUZZ))
  message(FATAL_ERROR "MESH_TSAN excludes MESH_SANITIZE and MESH_FUZZ: build them apart")
endif()

set(MESH_SAN_FLAGS)
if(MESH_TSAN)
  set(MESH_SAN_FLAGS -fsanitize=thread -fno-omit-frame-pointer)
endif()
if(MESH_SANITIZE)
  set(MESH_SAN_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer
      -fno-sanitize-recover=undefined)
endif()
if(MESH_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "MESH_FUZZ needs clang (CC=clang)")
  endif()
  list(APPEND MESH_SAN_FLAGS -fsanitize=fuzzer-no-link,address,undefined
       -fno-omit-frame-pointer)
endif()
add_compile_options(${MESH_SAN_FLAGS})
add_link_options(${MESH_SAN_FLAGS})
# glibc hides its extensions (accept4, sync_file_range, mallinfo2, ...)
# unless _GNU_SOURCE is defined; macOS's libc shows all it has unless a
# standard is asked for, and ignores _GNU_SOURCE, so nothing is defined there
# (scripts/check-macos compiles the same way).
if(NOT APPLE)
  add_compile_definitions(_GNU_SOURCE)
endif()

# mesh_part(NAME DIR [EXCLUDE file...] [LIBS lib...]): one static library per
# part, from every .c file in the part's folder and its sub-folders.
function(mesh_part name)
  cmake_parse_arguments(P "" "" "EXCLUDE;LIBS;PUBLIC_INCLUDES" ${ARGN})
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.c)
  foreach(x ${P_EXCLUDE})
    list(FILTER srcs EXCLUDE REGEX "/${x}$")
  endforeach()
  if(NOT srcs)
    set(srcs ${PROJECT_SOURCE_DIR}/cmake/empty.c)
  endif()
  add_library(${name} STATIC ${srcs})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR} ${P_PUBLIC_INCLUDES})
  target_compile_options(${name} PRIVATE ${MESH_WARNINGS})
  target_link_libraries(${name} PUBLIC ${P_LIBS})
endfunction()

# mesh_core(NAME SOURCES file... [LIBS lib...]): a sans-IO core (the SWIM
# core and the connection manager, the coordinator core). Every file is
# compiled with cmake/sans_io.h force-included, which poisons the functions
# that reach a socket, a file, a clock, the environment or the event loop:
# a core that calls one fails to build (tests/layers checks that it does).
set(MESH_SANS_IO_HEADER ${CMAKE_CURRENT_LIST_DIR}/sans_io.h)
function(mesh_core name)
  cmake_parse_arguments(P "" "" "SOURCES;LIBS" ${ARGN})
  add_library(${name} STATIC ${P_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${MESH_WARNINGS} -include ${MESH_SANS_IO_HEADER})
  target_link_libraries(${name} PUBLIC ${P_LIBS})
endfunction()

# Every test and fuzz target links the whole set of parts.
set(MESH_ALL_LIBS mesh_daemon mesh_coord mesh_coord_core mesh_net mesh_swim_core mesh_identity
    mesh_base mesh_proto)
