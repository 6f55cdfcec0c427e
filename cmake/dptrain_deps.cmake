# Finds dptrain's dependencies: LibTorch, MPI, HDF5, libcurl, the small header libraries, optionally CUDA and NCCL.

find_package(Torch REQUIRED)
find_package(MPI REQUIRED COMPONENTS C)
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(tomlplusplus REQUIRED)
find_package(CLI11 REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(OpenSSL REQUIRED COMPONENTS Crypto)
find_package(ZLIB REQUIRED)
find_package(CURL REQUIRED)  # the mlflow sink's REST client
find_package(Threads REQUIRED)

# LibTorch's flags (the C++ ABI define) apply to every target that sees torch headers.
add_library(dptrain_torch INTERFACE)
target_link_libraries(dptrain_torch INTERFACE ${TORCH_LIBRARIES})
target_compile_options(dptrain_torch INTERFACE ${TORCH_CXX_FLAGS})
add_library(dptrain::torch ALIAS dptrain_torch)

add_library(dptrain_hdf5 INTERFACE)
target_include_directories(dptrain_hdf5 SYSTEM INTERFACE ${HDF5_C_INCLUDE_DIRS} ${HDF5_INCLUDE_DIRS})
target_link_libraries(dptrain_hdf5 INTERFACE ${HDF5_C_LIBRARIES} ${HDF5_LIBRARIES})
target_compile_definitions(dptrain_hdf5 INTERFACE ${HDF5_C_DEFINITIONS} ${HDF5_DEFINITIONS})
add_library(dptrain::hdf5 ALIAS dptrain_hdf5)

# CUDA: AUTO builds the kernels when a CUDA compiler is found, ON insists, OFF skips.
set(DPTRAIN_HAS_CUDA OFF)
if(NOT DPTRAIN_WITH_CUDA STREQUAL "OFF")
  if(NOT DEFINED CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(CMAKE_CUDA_ARCHITECTURES ${DPTRAIN_CUDA_ARCHITECTURES})
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(DPTRAIN_HAS_CUDA ON)
    set(DPTRAIN_CUDA_SUMMARY "ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, sm ${DPTRAIN_CUDA_ARCHITECTURES})")
  elseif(DPTRAIN_WITH_CUDA STREQUAL "ON")
    message(FATAL_ERROR "DPTRAIN_WITH_CUDA=ON but no CUDA compiler was found: install the CUDA toolkit "
                        "or pass -DCMAKE_CUDA_COMPILER=/path/to/nvcc (or use DPTRAIN_WITH_CUDA=AUTO)")
  else()
    set(DPTRAIN_CUDA_SUMMARY "OFF (no CUDA compiler found)")
  endif()
else()
  set(DPTRAIN_CUDA_SUMMARY "OFF (DPTRAIN_WITH_CUDA=OFF)")
endif()

# NCCL: needs CUDA; looked for beside the CUDA toolkit and in NCCL_ROOT.
set(DPTRAIN_HAS_NCCL OFF)
if(DPTRAIN_HAS_CUDA AND NOT DPTRAIN_WITH_NCCL STREQUAL "OFF")
  find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${NCCL_ROOT} $ENV{NCCL_ROOT} ${CUDAToolkit_INCLUDE_DIRS} PATH_SUFFIXES include)
  find_library(NCCL_LIBRARY nccl HINTS ${NCCL_ROOT} $ENV{NCCL_ROOT} ${CUDAToolkit_LIBRARY_DIR} PATH_SUFFIXES lib lib64)
  if(NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
    set(DPTRAIN_HAS_NCCL ON)
    set(DPTRAIN_NCCL_SUMMARY "ON (${NCCL_LIBRARY})")
  endif()
endif()
if(NOT DPTRAIN_HAS_NCCL)
  if(DPTRAIN_WITH_NCCL STREQUAL "ON")
    message(FATAL_ERROR "DPTRAIN_WITH_NCCL=ON but NCCL (and CUDA) were not found: set NCCL_ROOT to the NCCL "
                        "install or use DPTRAIN_WITH_NCCL=AUTO")
  endif()
  if(NOT DEFINED DPTRAIN_NCCL_SUMMARY)
    set(DPTRAIN_NCCL_SUMMARY "OFF (needs CUDA and NCCL)")
  endif()
endif()

# Shared warning set for dptrain's own code.
add_library(dptrain_warnings INTERFACE)
target_compile_options(dptrain_warnings INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>)
add_library(dptrain::warnings ALIAS dptrain_warnings)
