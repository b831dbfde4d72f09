/*
 * cli.c — the `oplog` command: a Lua 5.4 interpreter with the project's Lua
 * code compiled in. Every subcommand lives in lua/oplog/cli.lua on top of the
 * same Lua API users have; this file only wires the embedded modules up so
 * that the binary works when copied alone to a device.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lua_oplog.h"

/* Generated from every lua/ file by CMakeLists.txt (build/gen/embedded_lua.c). */
extern const struct {
  const char *name;
  const char *text;
  size_t len;
} oplog_lua_sources[];

/* package.preload loader for embedded module number upvalue(1). */
static int load_embedded(lua_State *L) {
  lua_Integer i = lua_tointeger(L, lua_upvalueindex(1));
  const char *name = oplog_lua_sources[i].name;
  char chunkname[256];
  snprintf(chunkname, sizeof chunkname, "=[oplog]/%s", name);
  if (luaL_loadbufferx(L, oplog_lua_sources[i].text, oplog_lua_sources[i].len, chunkname, "t") !=
      LUA_OK)
    return lua_error(L);
  /* Same arguments as package.searchers give a loaded chunk. */
  lua_pushstring(L, name);
  lua_pushliteral(L, ":embedded:");
  lua_call(L, 2, 1);
  return 1;
}

/* oplog.tty: what stock Lua lacks for a progress bar (terminal test, wall
 * clock, terminal width). */
static int tty_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

static int tty_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

static int tty_width(lua_State *L) {
  struct winsize ws;
  int fd = (int)luaL_optinteger(L, 1, 2);
  if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    lua_pushinteger(L, ws.ws_col);
  else
    lua_pushinteger(L, 80);
  return 1;
}

static int luaopen_oplog_tty(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"isatty", tty_isatty}, {"now", tty_now}, {"width", tty_width}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}

/* Everything that may raise runs here, under lua_pcall. */
static int run_main(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);

  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_oplog_core);
  lua_setfield(L, -2, "oplog.core");
  lua_pushcfunction(L, luaopen_oplog_tty);
  lua_setfield(L, -2, "oplog.tty");
  for (lua_Integer i = 0; oplog_lua_sources[i].name; i++) {
    lua_pushinteger(L, i);
    lua_pushcclosure(L, load_embedded, 1);
    lua_setfield(L, -2, oplog_lua_sources[i].name);
  }
  lua_pop(L, 1);

  /* argv as a table indexed from 0, like C's. */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "oplog.cli");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "main");
  lua_createtable(L, argc, 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_call(L, 1, 1);
  return 1;
}

int main(int argc, char **argv) {
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "oplog: nomem: cannot create the Lua state\n");
    return 2;
  }
  int status = 2;
  lua_pushcfunction(L, run_main);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  if (lua_pcall(L, 2, 1, 0) == LUA_OK) {
    if (lua_isinteger(L, -1))
      status = (int)lua_tointeger(L, -1);
    else
      status = lua_toboolean(L, -1) ? 0 : 2;
  } else {
    /* cli.lua reports its own errors; this is the last resort. oplog error
     * tables carry a __tostring giving "oplog: <code>: <message>". */
    const char *msg = luaL_tolstring(L, -1, NULL);
    if (strncmp(msg, "oplog: ", 7) == 0)
      fprintf(stderr, "%s\n", msg);
    else
      fprintf(stderr, "oplog: error: %s\n", msg);
  }
  lua_close(L);
  if (fflush(stdout) != 0 && status == 0) {
    fprintf(stderr, "oplog: io: writing output: %s\n", strerror(errno));
    status = 2;
  }
  return status;
}
