# MAILD_SANITIZE=ON builds everything with ASan and UBSan; UBSan findings abort
# so that a test that trips one fails.
if(MAILD_SANITIZE)
  set(MAILD_SANITIZE_FLAGS -fsanitize=address,undefined
    -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_compile_options(${MAILD_SANITIZE_FLAGS})
  add_link_options(${MAILD_SANITIZE_FLAGS})
endif()

# With clang, fuzz builds instrument every target for coverage so the
# harnesses see inside the library; the runtime comes with the link flag.
if(MAILD_BUILD_FUZZ AND CMAKE_C_COMPILER_ID MATCHES "Clang")
  add_compile_options(-fsanitize=fuzzer-no-link)
  add_link_options(-fsanitize=fuzzer-no-link)
endif()
