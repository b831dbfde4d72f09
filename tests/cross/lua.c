/*
 * lua.c — a minimal `lua5.4 SCRIPT ARGS...` for the cross builds: runs the
 * busted specs under qemu-user with the target's Lua. Debian's lua5.4
 * package is Multi-Arch: foreign, so the target's interpreter cannot be
 * installed beside the host's; liblua5.4-dev:<arch> can, and this is the
 * part of lua.c that busted needs: the standard libraries, `arg`, the
 * script's arguments as `...`, a traceback on error, exit status 1; and
 * `-e CODE` alone (two specs start `lua5.4 -e '...'`).
 * Linked with the shared liblua5.4 so that C modules (oplog/core.so, lfs,
 * system) find the Lua API in it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) msg = luaL_tolstring(L, 1, NULL);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s SCRIPT [ARGS...]\n", argv[0]);
    return 2;
  }
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    fprintf(stderr, "%s: cannot create the Lua state\n", argv[0]);
    return 2;
  }
  luaL_openlibs(L);
  /* arg[-1] the interpreter, arg[0] the script, arg[1..] its arguments
   * (for -e, arg[0] is "-e": nothing reads it) */
  lua_createtable(L, argc - 2, 2);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1);
  }
  lua_setglobal(L, "arg");
  int status = 1;
  lua_pushcfunction(L, traceback);
  if (argc == 3 && strcmp(argv[1], "-e") == 0) {
    if (luaL_loadbuffer(L, argv[2], strlen(argv[2]), "=(command line)") == LUA_OK &&
        lua_pcall(L, 0, 0, 1) == LUA_OK)
      status = 0;
  } else if (luaL_loadfile(L, argv[1]) == LUA_OK) {
    for (int i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
    if (lua_pcall(L, argc - 2, 0, 1) == LUA_OK) status = 0;
  }
  if (status != 0) fprintf(stderr, "%s: %s\n", argv[0], lua_tostring(L, -1));
  lua_close(L);
  return status;
}
