/*
 * lua_oplog.h — the Lua 5.4 binding of oplog as the C module `oplog.core`.
 * The `oplog` command registers it in package.preload; the stock lua5.4
 * interpreter finds it as oplog/core.so on package.cpath.
 */
#ifndef LUA_OPLOG_H
#define LUA_OPLOG_H

#include <lua.h>

/* The module's one exported symbol (it is built with hidden visibility). */
#if defined(__GNUC__) || defined(__clang__)
#define OPLOG_LUA_API __attribute__((visibility("default")))
#else
#define OPLOG_LUA_API
#endif

OPLOG_LUA_API int luaopen_oplog_core(lua_State *L);

#endif /* LUA_OPLOG_H */
