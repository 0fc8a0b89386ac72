# Layer enforcement (DESIGN.md "Layers"). Debian installs uv.h, mbedtls/ and
# ldns/ under /usr/include, which is always searched, so leaving them off the
# include path is not enough. Instead, layers 0 and 1 compile with a "poison"
# directory first on their include path: it holds a header of the same name
# for every libuv, mbedTLS (and, outside lib/dns, ldns) header, each of which
# stops the build with #error. An engine that includes <uv.h> does not compile.

function(maild_make_poison dir)
  set(names ${ARGN})
  foreach(rel IN LISTS names)
    get_filename_component(sub ${rel} DIRECTORY)
    file(MAKE_DIRECTORY ${dir}/${sub})
    file(WRITE ${dir}/${rel}
      "#error \"<${rel}> is not allowed in this layer (see DESIGN.md, Layers)\"\n")
  endforeach()
endfunction()

function(maild_header_names out root prefix)
  file(GLOB_RECURSE hs RELATIVE ${root} ${root}/${prefix}*.h)
  set(${out} ${hs} PARENT_SCOPE)
endfunction()

set(_inc /usr/include)
maild_header_names(_uv ${_inc} uv)
maild_header_names(_tls ${_inc} mbedtls/)
maild_header_names(_ldns ${_inc} ldns/)
list(APPEND _uv uv.h)
list(REMOVE_DUPLICATES _uv)
list(APPEND _tls mbedtls/ssl.h mbedtls/config.h)
list(REMOVE_DUPLICATES _tls)
list(APPEND _ldns ldns/ldns.h)
list(REMOVE_DUPLICATES _ldns)

# No libuv, mbedTLS or ldns at all (layer 0, and layer 1 but lib/dns).
set(MAILD_POISON_ALL ${CMAKE_BINARY_DIR}/poison/all)
maild_make_poison(${MAILD_POISON_ALL} ${_uv} ${_tls} ${_ldns})
# lib/dns may use ldns as a packet codec, nothing else.
set(MAILD_POISON_DNS ${CMAKE_BINARY_DIR}/poison/dns)
maild_make_poison(${MAILD_POISON_DNS} ${_uv} ${_tls})
