/* luajit_host.c: `luajit SCRIPT ARGS...` for the callgrind mode of the
 * benchmark harness (bench/callgrind.py), nothing more: a Lua state with the
 * standard libraries (the JIT on, as in luajit), the global `arg` as luajit
 * sets it, the script run with its arguments.
 *
 * Debian's /usr/bin/luajit is stripped: in a callgrind profile LuaJIT's
 * interpreter and runtime are bare addresses. This host is linked with the
 * static library of the same build (libluajit-5.1.a, package
 * libluajit-5.1-dev), which keeps the names (lj_BC_*, lj_vm_*, lj_tab_*, ...).
 * -Wl,-E exports the lua_* API, for the C modules that the scripts load
 * (sock.so, luv, cqueues, LuaSocket), as luajit does.
 *
 *   gcc -O2 -o luajit-host luajit_host.c -I/usr/include/luajit-2.1 \
 *       /usr/lib/x86_64-linux-gnu/libluajit-5.1.a -lm -ldl -Wl,-E
 */
#include <stdio.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s SCRIPT [ARGS...]\n", argv[0]);
        return 2;
    }
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "%s: cannot create a Lua state\n", argv[0]);
        return 1;
    }
    luaL_openlibs(L);
    /* arg[-1] = this program, arg[0] = the script, arg[1..] = its arguments */
    lua_createtable(L, argc - 2, 2);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - 1);
    }
    lua_setglobal(L, "arg");
    lua_pushcfunction(L, traceback);
    int status = luaL_loadfile(L, argv[1]);
    if (status == 0) {
        for (int i = 2; i < argc; i++)
            lua_pushstring(L, argv[i]);
        status = lua_pcall(L, argc - 2, 0, 1);
    }
    if (status != 0) {
        fprintf(stderr, "%s: %s\n", argv[0], lua_tostring(L, -1));
        return 1;
    }
    lua_close(L);
    return 0;
}
