# bwsk._rev: the reversible-coupling operators, built against the installed torch.
# Included from the top-level CMakeLists.txt when BWSK_WITH_TORCH is ON; skips with a message
# when torch is not importable, so the core (bwsk._core) never needs torch.

execute_process(
  COMMAND ${Python_EXECUTABLE} -c "import torch, sys; sys.stdout.write(torch.utils.cmake_prefix_path)"
  OUTPUT_VARIABLE BWSK_TORCH_PREFIX
  RESULT_VARIABLE BWSK_TORCH_FOUND
  ERROR_QUIET)
if(NOT BWSK_TORCH_FOUND EQUAL 0)
  message(STATUS "bwsk: torch is not importable by ${Python_EXECUTABLE}; skipping bwsk._rev")
  return()
endif()

list(APPEND CMAKE_PREFIX_PATH ${BWSK_TORCH_PREFIX})
find_package(Torch QUIET)
if(NOT Torch_FOUND)
  message(STATUS "bwsk: find_package(Torch) failed under ${BWSK_TORCH_PREFIX}; skipping bwsk._rev")
  return()
endif()

set(BWSK_REV_DIR ${CMAKE_CURRENT_LIST_DIR})
set(BWSK_REV_SOURCES ${BWSK_REV_DIR}/rev.cpp)
# CUDA kernels only where torch itself was built with CUDA; elsewhere tests/test_nvcc.py
# compiles the same kernels (nvcc_check.cu) as a compile-only check.
if(TORCH_CUDA_LIBRARIES)
  enable_language(CUDA)
  list(APPEND BWSK_REV_SOURCES ${BWSK_REV_DIR}/rev_cuda.cu)
  message(STATUS "bwsk: building bwsk._rev with CUDA kernels")
else()
  message(STATUS "bwsk: torch has no CUDA; building bwsk._rev for CPU only")
endif()

Python_add_library(_rev MODULE WITH_SOABI ${BWSK_REV_SOURCES})
# torch's headers need C++20; the core stays on C++17.
set_target_properties(_rev PROPERTIES CXX_STANDARD 20 CUDA_STANDARD 20)
target_include_directories(_rev PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/csrc)
target_compile_options(_rev PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${TORCH_CXX_FLAGS}>)
# Only operators are registered (TORCH_LIBRARY): no libtorch_python needed.
target_link_libraries(_rev PRIVATE ${TORCH_LIBRARIES})
get_filename_component(BWSK_TORCH_LIB_DIR ${TORCH_LIBRARY} DIRECTORY)
set_target_properties(_rev PROPERTIES INSTALL_RPATH "$ORIGIN/../torch/lib;${BWSK_TORCH_LIB_DIR}")
install(TARGETS _rev DESTINATION bwsk)
