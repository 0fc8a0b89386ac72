# Warning flags for every target of this project (STYLE.md: -Wall -Wextra
# -Wshadow -Wformat=2 -Wconversion clean).
set(MAILD_WARNINGS -Wall -Wextra -Wshadow -Wformat=2 -Wconversion
  -Wsign-conversion -Wstrict-prototypes -Wmissing-prototypes -Wvla
  -Wpointer-arith -Wundef)
if(MAILD_WERROR)
  list(APPEND MAILD_WARNINGS -Werror)
endif()

function(maild_warnings target)
  target_compile_options(${target} PRIVATE ${MAILD_WARNINGS})
endfunction()
