/*
 * rel_fuzz_lua.c — fuzz target: the Lua API's argument handling, driven by
 * bytes. It embeds Lua with the binding (src/lua_oplog.c) and runs
 * lua_api_fuzz.lua, whose random choices come from the input instead of
 * math.random (M.run_input). A violation is raised by the script as a Lua
 * error and turned into abort() here; a crash is a failure by itself.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "lua_oplog.h"
#include "rel_common.h"

#ifndef REL_LUA_SCRIPT
#error "REL_LUA_SCRIPT must name lua_api_fuzz.lua"
#endif

static lua_State *L;
static int M_ref = LUA_NOREF;
static char *dir;

static void setup(void) {
  if (L) return;
  L = luaL_newstate();
  REL_CHECK(L != NULL, "luaL_newstate");
  luaL_openlibs(L);
  /* `require "oplog"` and "oplog.core" both give the binding (lua/oplog.lua
   * only returns oplog.core). */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_oplog_core);
  lua_setfield(L, -2, "oplog.core");
  lua_pushcfunction(L, luaopen_oplog_core);
  lua_setfield(L, -2, "oplog");
  lua_pop(L, 1);
  lua_pushboolean(L, 1);
  lua_setglobal(L, "REL_FUZZ_HARNESS");
  if (luaL_dofile(L, REL_LUA_SCRIPT) != LUA_OK) {
    fprintf(stderr, "loading %s: %s\n", REL_LUA_SCRIPT, lua_tostring(L, -1));
    abort();
  }
  M_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  dir = rel_mkdtemp_fast("fuzz-lua");
  lua_rawgeti(L, LUA_REGISTRYINDEX, M_ref);
  lua_getfield(L, -1, "setup");
  lua_pushstring(L, dir);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "setup: %s\n", luaL_tolstring(L, -1, NULL));
    abort();
  }
  lua_pop(L, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup();
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, M_ref);
  lua_getfield(L, -1, "run_input");
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "fuzz violation: %s\n", luaL_tolstring(L, -1, NULL));
    abort();
  }
  lua_settop(L, top);
  /* Collect often: __gc paths (handles, iterators) are part of the API. */
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}

void rel_fuzz_seeds(void (*add)(const uint8_t *p, size_t n)) {
  uint8_t b[96];
  for (int s = 0; s < 26; s++) { /* one seed per step kind */
    for (size_t i = 0; i < sizeof b; i++) b[i] = (uint8_t)(i * 7 + s);
    b[0] = (uint8_t)s;
    add(b, 24 + (size_t)s);
  }
}

void rel_fuzz_cleanup(void) {
  if (!L) return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, M_ref);
  lua_getfield(L, -1, "finish");
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    fprintf(stderr, "finish: %s\n", luaL_tolstring(L, -1, NULL));
    abort();
  }
  lua_close(L);
  L = NULL;
  rel_rmdir_all(dir);
  free(dir);
}
