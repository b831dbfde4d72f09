# After the static oplog command is linked (OPLOG_STATIC):
#   cmake -DMAP=oplog.map -DBIN=oplog -P cmake/static-check-map.cmake
# src/static_libc.c's sscanf reads only what glibc's tzset asks of it (and
# aborts on anything else): the link's cross-reference table (ld --cref)
# must show that it is the one linked and that tzset.o alone calls it.
# On failure the binary is removed, so that a failed build leaves none.
function(fail msg)
  if(BIN)
    file(REMOVE "${BIN}")
  endif()
  message(FATAL_ERROR "static-check-map: ${msg} (${MAP})")
endfunction()

file(READ "${MAP}" map)
string(FIND "${map}" "\nCross Reference Table\n" at)
if(at EQUAL -1)
  fail("no cross reference table: the link needs -Wl,--cref")
endif()
string(SUBSTRING "${map}" ${at} -1 xref)
# One entry: the symbol, its definition, then one indented line per
# referring file (a long symbol name puts the first file on its own line).
string(REGEX MATCH "\n__isoc99_sscanf[ \n]+[^\n]+(\n +[^ \n][^\n]*)*" entry "${xref}")
if(NOT entry)
  fail("__isoc99_sscanf is not in the cross reference table")
endif()
string(REGEX REPLACE "^\n__isoc99_sscanf[ \n]+" "" entry "${entry}")
string(REPLACE "\n" ";" files "${entry}")
list(POP_FRONT files definition)
if(NOT definition MATCHES "static_libc\\.c\\.o$")
  fail("__isoc99_sscanf comes from ${definition}, not src/static_libc.c")
endif()
foreach(f ${files})
  string(STRIP "${f}" f)
  if(NOT f MATCHES "libc\\.a\\(tzset\\.o\\)$")
    fail("${f} calls sscanf: src/static_libc.c's serves glibc's tzset only")
  endif()
endforeach()
