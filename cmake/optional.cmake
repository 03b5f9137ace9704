# Optional parts of the engine, each enabled when its toolkit is found and reported at configure time.

# --- CUDA backend: src/kernels/cuda/*.cu, built when nvcc is present -------------------------------
set(VLM_HAVE_CUDA OFF)
file(GLOB VLM_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/kernels/cuda/*.cu
     ${CMAKE_SOURCE_DIR}/src/kernels/cuda/*.c)
if(VLM_CUDA AND VLM_CUDA_SOURCES)
  include(CheckLanguage)
  if(NOT DEFINED CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # VLM_CUDA_ARCH picks the GPU targets, e.g. 90a: H100/H200 only, with Hopper's own instructions
    # (wgmma, setmaxnreg; scripts/gpu_check.sh builds so). Default: A100 and H100/H200 (sm_80, sm_90).
    set(VLM_CUDA_ARCH "" CACHE STRING "CUDA architectures, e.g. 90a (default: 80;90)")
    if(VLM_CUDA_ARCH)
      set(CMAKE_CUDA_ARCHITECTURES ${VLM_CUDA_ARCH})
    elseif(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 90)   # A100, H100/H200
    endif()
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 20)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    find_package(CUDAToolkit REQUIRED)
    set(VLM_HAVE_CUDA ON)
    target_sources(vlmcore PRIVATE ${VLM_CUDA_SOURCES})
    target_compile_definitions(vlmcore PUBLIC VLM_HAVE_CUDA=1)
    target_link_libraries(vlmcore PUBLIC CUDA::cudart_static CUDA::cublas)
    target_compile_options(vlmcore PRIVATE "$<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wno-format-truncation;--expt-relaxed-constexpr>")
    set_target_properties(vlmcore PROPERTIES CUDA_SEPARABLE_COMPILATION OFF
                          CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}")
  endif()
endif()
message(STATUS "vlm: CUDA backend ${VLM_HAVE_CUDA} (architectures: ${CMAKE_CUDA_ARCHITECTURES})")

# --- ONNX Runtime (run_onnx mode): ORT_ROOT, else third_party/onnxruntime from scripts/setup.sh ----
set(VLM_HAVE_ORT OFF)
set(VLM_ORT_ROOT "$ENV{ORT_ROOT}")
if(NOT VLM_ORT_ROOT)
  set(VLM_ORT_ROOT ${CMAKE_SOURCE_DIR}/third_party/onnxruntime)
endif()
# a different ORT_ROOT than at the last configure: search again instead of keeping the cached paths
if(DEFINED VLM_ORT_ROOT_USED AND NOT VLM_ORT_ROOT_USED STREQUAL VLM_ORT_ROOT)
  unset(ORT_INCLUDE_DIR CACHE)
  unset(ORT_LIBRARY CACHE)
endif()
set(VLM_ORT_ROOT_USED "${VLM_ORT_ROOT}" CACHE INTERNAL "ONNX Runtime root of the last configure")
find_path(ORT_INCLUDE_DIR onnxruntime_c_api.h
          PATHS ${VLM_ORT_ROOT}/include ${VLM_ORT_ROOT}/include/onnxruntime NO_DEFAULT_PATH)
find_library(ORT_LIBRARY NAMES onnxruntime libonnxruntime.so.1 PATHS ${VLM_ORT_ROOT}/lib NO_DEFAULT_PATH)
file(GLOB VLM_ORT_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/runtime/onnx/ort_*.c)
if(VLM_ONNXRUNTIME AND ORT_INCLUDE_DIR AND ORT_LIBRARY AND VLM_ORT_SOURCES)
  set(VLM_HAVE_ORT ON)
  target_sources(vlmcore PRIVATE ${VLM_ORT_SOURCES})
  target_include_directories(vlmcore PRIVATE ${ORT_INCLUDE_DIR})
  target_compile_definitions(vlmcore PUBLIC VLM_HAVE_ORT=1)
  target_link_libraries(vlmcore PUBLIC ${ORT_LIBRARY})
  get_filename_component(ORT_LIB_DIR ${ORT_LIBRARY} DIRECTORY)
  set(CMAKE_BUILD_RPATH ${ORT_LIB_DIR})
  set(CMAKE_INSTALL_RPATH ${ORT_LIB_DIR})
endif()
message(STATUS "vlm: ONNX Runtime ${VLM_HAVE_ORT} (${VLM_ORT_ROOT})")

# --- protobuf-c + onnx.proto (ONNX export) ----------------------------------------------------------
set(VLM_HAVE_ONNX_EXPORT OFF)
find_program(PROTOC_C protoc-c)
find_library(PROTOBUF_C_LIBRARY protobuf-c)
find_file(ONNX_PROTO onnx.proto PATHS /usr/include/onnx NO_DEFAULT_PATH)
file(GLOB VLM_ONNX_EXPORT_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/runtime/onnx/export_*.c)
if(PROTOC_C AND PROTOBUF_C_LIBRARY AND ONNX_PROTO AND VLM_ONNX_EXPORT_SOURCES)
  set(VLM_HAVE_ONNX_EXPORT ON)
  set(ONNX_GEN_DIR ${CMAKE_BINARY_DIR}/onnx_proto)
  file(MAKE_DIRECTORY ${ONNX_GEN_DIR})
  get_filename_component(ONNX_PROTO_DIR ${ONNX_PROTO} DIRECTORY)
  add_custom_command(OUTPUT ${ONNX_GEN_DIR}/onnx.pb-c.c ${ONNX_GEN_DIR}/onnx.pb-c.h
                     COMMAND ${PROTOC_C} --c_out=${ONNX_GEN_DIR} -I${ONNX_PROTO_DIR} ${ONNX_PROTO}
                     DEPENDS ${ONNX_PROTO} COMMENT "protoc-c onnx.proto")
  set_source_files_properties(${ONNX_GEN_DIR}/onnx.pb-c.c PROPERTIES COMPILE_OPTIONS "-w")
  target_sources(vlmcore PRIVATE ${VLM_ONNX_EXPORT_SOURCES} ${ONNX_GEN_DIR}/onnx.pb-c.c)
  target_include_directories(vlmcore PRIVATE ${ONNX_GEN_DIR})
  target_compile_definitions(vlmcore PUBLIC VLM_HAVE_ONNX_EXPORT=1)
  target_link_libraries(vlmcore PUBLIC ${PROTOBUF_C_LIBRARY})
endif()
message(STATUS "vlm: ONNX export ${VLM_HAVE_ONNX_EXPORT}")

# --- run_onnx parts built in every configuration: src/runtime/onnx/onnx_*.c ------------------------
# (export options, the manifest / staleness check, vlm_onnx_available, and the "unavailable" answers
# of the exporter and the session when protobuf-c or ONNX Runtime is missing)
file(GLOB VLM_ONNX_COMMON_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/runtime/onnx/onnx_*.c)
target_sources(vlmcore PRIVATE ${VLM_ONNX_COMMON_SOURCES})

# --- vlm serve and vlm bench --serve: libmicrohttpd and libcurl (scripts/setup.sh installs both) -----
# Without them (a bare machine building from copied libraries: scripts/gpu_check.sh) the rest of vlm
# builds, and `vlm serve` / `vlm bench --serve` say they are not in this build.
set(VLM_HAVE_SERVE OFF)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(MHD IMPORTED_TARGET libmicrohttpd)
  pkg_check_modules(CURL IMPORTED_TARGET libcurl)
endif()
file(GLOB VLM_SERVE_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/serve/*.c)
if(MHD_FOUND AND CURL_FOUND AND VLM_SERVE_SOURCES)
  set(VLM_HAVE_SERVE ON)
  target_sources(vlmcore PRIVATE ${VLM_SERVE_SOURCES} ${CMAKE_SOURCE_DIR}/src/bench/bench_serve.c)
  target_compile_definitions(vlmcore PUBLIC VLM_HAVE_SERVE=1)
  target_link_libraries(vlmcore PUBLIC PkgConfig::MHD PkgConfig::CURL)
endif()
message(STATUS "vlm: serve (libmicrohttpd ${MHD_VERSION}, libcurl ${CURL_VERSION}) ${VLM_HAVE_SERVE}")
