//! Runs the Lua test suite (`tests/lua/run.lua`) in the real `luajit` on the
//! module, and checks that two Lua states on one OS thread can load it.
//!
//! The module is a `cdylib` that `cargo test` builds neither for nor with the
//! tests, so the tests build it themselves: `cargo build -p sock-lua` with the
//! profile (and target directory) of this test executable, then copy
//! `libsock_lua.so` as `sock.so` into a temporary folder for `LUA_CPATH`. Set
//! `SOCK_LUA_MODULE=/path/to/libsock_lua.so` to test an already built module
//! instead (e.g. the release build of `scripts/build-lua.sh`).
//!
//! Needs `luajit` on `PATH` (or `LUAJIT=/path/to/luajit`), and for the two-state
//! test its shared library `libluajit-5.1.so.2` (Debian: `apt-get install luajit`
//! brings both).

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A folder holding `sock.so`, built (once per test process) from this
/// workspace, or copied from `SOCK_LUA_MODULE`.
fn module_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let (built, kind) = match std::env::var_os("SOCK_LUA_MODULE") {
            Some(path) => (PathBuf::from(path), "given".to_owned()),
            None => build_module(),
        };
        // One folder per profile, reused by every run. Test processes run in
        // parallel and one may be loading sock.so while another replaces it: copy
        // to a private name, then rename over sock.so (atomic; a process that
        // has the old file open or mapped keeps it).
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("sock-lua-{kind}"));
        std::fs::create_dir_all(&dir).expect("create the module folder");
        let tmp = dir.join(format!("sock.so.{}", std::process::id()));
        std::fs::copy(&built, &tmp)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", built.display(), tmp.display()));
        std::fs::rename(&tmp, dir.join("sock.so")).expect("rename to sock.so");
        // The TLS module's names, links to the same library (as
        // scripts/build-lua.sh makes them).
        for name in ["sock_tls.so", "sock_libtls.so"] {
            let link = dir.join(name);
            if std::fs::read_link(&link).is_err() {
                let _ = std::fs::remove_file(&link);
                let _ = std::os::unix::fs::symlink("sock.so", &link);
            }
        }
        dir
    })
}

/// Builds the module with the profile of this test executable; returns the path
/// of the `.so` cargo reports and the profile's folder name.
fn build_module() -> (PathBuf, String) {
    // This executable is <target dir>/<profile dir>/deps/<name>.
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable in <target>/<profile>/deps");
    let target_dir = profile_dir.parent().expect("a target folder");
    let profile_name = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a profile folder name");
    let profile = match profile_name {
        "debug" => "dev",
        name => name,
    };
    let out = Command::new(env!("CARGO"))
        .args([
            "build",
            "-p",
            "sock-lua",
            "--message-format=json-render-diagnostics",
        ])
        .args(["--profile", profile])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build -p sock-lua failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The compiler-artifact message of the cdylib lists its path in "filenames".
    let stdout = String::from_utf8_lossy(&out.stdout);
    let suffix = "libsock_lua.so\"";
    let end = stdout
        .find(suffix)
        .unwrap_or_else(|| panic!("no libsock_lua.so in cargo's output:\n{stdout}"));
    let start = stdout[..end].rfind('"').expect("a quoted path") + 1;
    let path = PathBuf::from(&stdout[start..end + suffix.len() - 1]);
    (path, profile_name.to_owned())
}

/// The `luajit` to run.
fn luajit() -> PathBuf {
    std::env::var_os("LUAJIT").map_or_else(|| PathBuf::from("luajit"), PathBuf::from)
}

#[test]
fn lua_suite() {
    let dir = module_dir();
    let run = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lua/run.lua");
    let out = Command::new(luajit())
        .arg(&run)
        .env("LUA_CPATH", format!("{}/?.so;;", dir.display()))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (install LuaJIT: apt-get install luajit, or set LUAJIT)",
                luajit().display()
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(out.status.success(), "the Lua suite failed: {}", out.status);
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.ends_with(" passed, 0 failed") && !last.starts_with("0 passed"),
        "unexpected last line {last:?}"
    );
}

/// The few LuaJIT C API functions the two-state test calls, looked up in
/// `libluajit-5.1.so.2` loaded with `RTLD_GLOBAL`, so that the module's
/// undefined `lua_*` symbols resolve to it as they would in `luajit`.
struct LuaJit {
    newstate: NewState,
    openlibs: OpenLibs,
    loadstring: LoadString,
    pcall: PCall,
    tolstring: ToLString,
    settop: SetTop,
    close: Close,
}

type NewState = unsafe extern "C" fn() -> *mut c_void;
type OpenLibs = unsafe extern "C" fn(*mut c_void);
type LoadString = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;
type PCall = unsafe extern "C" fn(*mut c_void, c_int, c_int, c_int) -> c_int;
type ToLString = unsafe extern "C" fn(*mut c_void, c_int, *mut usize) -> *const c_char;
type SetTop = unsafe extern "C" fn(*mut c_void, c_int);
type Close = unsafe extern "C" fn(*mut c_void);

impl LuaJit {
    fn load() -> LuaJit {
        let name = c"libluajit-5.1.so.2";
        // SAFETY: dlopen with a NUL-terminated name; loading LuaJIT runs no
        // initializer that could conflict with this process.
        let lib = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        assert!(
            !lib.is_null(),
            "cannot load libluajit-5.1.so.2 (apt-get install luajit)"
        );
        let sym = |s: &CStr| {
            // SAFETY: `lib` is a live handle (never closed); `s` is NUL-terminated.
            let p = unsafe { libc::dlsym(lib, s.as_ptr()) };
            assert!(!p.is_null(), "no symbol {s:?} in libluajit");
            p
        };
        // SAFETY: each symbol is the LuaJIT 2.1 (Lua 5.1 API) function of that
        // name, whose C signature is the one of the field it is stored in.
        unsafe {
            LuaJit {
                newstate: std::mem::transmute::<*mut c_void, NewState>(sym(c"luaL_newstate")),
                openlibs: std::mem::transmute::<*mut c_void, OpenLibs>(sym(c"luaL_openlibs")),
                loadstring: std::mem::transmute::<*mut c_void, LoadString>(sym(c"luaL_loadstring")),
                pcall: std::mem::transmute::<*mut c_void, PCall>(sym(c"lua_pcall")),
                tolstring: std::mem::transmute::<*mut c_void, ToLString>(sym(c"lua_tolstring")),
                settop: std::mem::transmute::<*mut c_void, SetTop>(sym(c"lua_settop")),
                close: std::mem::transmute::<*mut c_void, Close>(sym(c"lua_close")),
            }
        }
    }

    /// A new state with the standard libraries and `package.cpath` starting
    /// with `dir`.
    fn state(&self, dir: &Path) -> State<'_> {
        // SAFETY: luaL_newstate has no precondition; a null result (out of
        // memory) is checked.
        let l = unsafe { (self.newstate)() };
        assert!(!l.is_null(), "luaL_newstate failed");
        // SAFETY: `l` is a fresh, valid state.
        unsafe { (self.openlibs)(l) };
        let s = State { lj: self, l };
        s.run(&format!(
            "package.cpath = '{}/?.so;' .. package.cpath",
            dir.display()
        ))
        .expect("set package.cpath");
        s
    }
}

/// One Lua state, closed when dropped.
struct State<'a> {
    lj: &'a LuaJit,
    l: *mut c_void,
}

impl State<'_> {
    /// Runs `code` in protected mode; returns its first result as text (or ""),
    /// or the error message.
    fn run(&self, code: &str) -> Result<String, String> {
        let code = CString::new(code).expect("no NUL in code");
        // SAFETY: `self.l` is a valid state used by this thread only; loadstring
        // and pcall are protected (a Lua error is returned, not raised); the
        // string lua_tolstring returns is copied before settop may free it.
        unsafe {
            let mut rc = (self.lj.loadstring)(self.l, code.as_ptr());
            if rc == 0 {
                rc = (self.lj.pcall)(self.l, 0, 1, 0);
            }
            let mut len = 0usize;
            let p = (self.lj.tolstring)(self.l, -1, &mut len);
            let text = if p.is_null() {
                String::new()
            } else {
                let bytes = std::slice::from_raw_parts(p.cast::<u8>(), len);
                String::from_utf8_lossy(bytes).into_owned()
            };
            (self.lj.settop)(self.l, 0);
            if rc == 0 {
                Ok(text)
            } else {
                Err(text)
            }
        }
    }

    /// [`run`](Self::run), panicking on a Lua error.
    fn eval(&self, code: &str) -> String {
        self.run(code)
            .unwrap_or_else(|e| panic!("Lua error: {e}\nin: {code}"))
    }
}

impl Drop for State<'_> {
    fn drop(&mut self) {
        // SAFETY: `self.l` is a valid state, closed exactly once, here.
        unsafe { (self.lj.close)(self.l) };
    }
}

/// Two Lua states on this one OS thread load the module and use it in turns;
/// per-state data (the `ip:tobinary()` copier, which calls back into the state
/// that set it) must not leak from one to the other, nor outlive a closed state.
#[test]
fn two_states_on_one_thread() {
    let dir = module_dir();
    let lj = LuaJit::load();
    let a = lj.state(dir);
    let b = lj.state(dir);
    let setup = |s: &State, host: &str| {
        s.eval(&format!(
            "sock = require'sock'; ai = sock.addr('{host}', 80, 'tcp'); return ai:tostring()"
        ))
    };
    assert_eq!(setup(&a, "127.0.0.1"), "127.0.0.1:80");
    assert_eq!(setup(&b, "::1"), "[::1]:80");
    let bin = "local b, n = ai.addr:addr():tobinary(); \
               return n .. ':' .. b[0] .. ':' .. b[n - 1]";
    assert_eq!(a.eval(bin), "4:127:1");
    assert_eq!(b.eval(bin), "16:0:1");
    // A reload in one state does not disturb the other.
    a.eval("package.loaded.sock = nil; sock2 = require'sock'; assert(sock2 ~= sock)");
    assert_eq!(b.eval(bin), "16:0:1");
    assert_eq!(a.eval(bin), "4:127:1");
    // Closing one state leaves the other working (with a GC cycle in between).
    drop(b);
    a.eval("collectgarbage(); collectgarbage()");
    assert_eq!(a.eval(bin), "4:127:1");
    assert_eq!(
        a.eval("return sock.addr('10.0.0.1', 1, 'udp'):tostring()"),
        "10.0.0.1:1"
    );
    // A programmer error is raised in the right state, with its message (the
    // error value is mlua's userdata: its text comes from tostring()).
    let err = a.eval("local ok, e = pcall(sock.addr, {}); assert(not ok); return tostring(e)");
    assert!(
        err.starts_with("sock.addr: bad argument #1 'host'"),
        "{err}"
    );
    drop(a);
    // After both closed, a new state loads the module again.
    let c = lj.state(dir);
    assert_eq!(setup(&c, "127.0.0.2"), "127.0.0.2:80");
    assert_eq!(c.eval(bin), "4:127:2");
}

/// Each Lua state has its own table of socket handles: a handle taken from
/// one state names nothing, or only that state's own sockets, in another,
/// and closing one state leaves the other's sockets working.
#[test]
fn socket_handles_are_per_state() {
    let dir = module_dir();
    let lj = LuaJit::load();
    let a = lj.state(dir);
    let b = lj.state(dir);
    let h2 = a.eval(
        "sock = require'sock'; \
         u1 = assert(sock.udp()); assert(u1:bind('127.0.0.1', 0)); \
         u2 = assert(sock.udp()); assert(u2:bind('127.0.0.1', 0)); \
         assert(u2:connect('127.0.0.1', u1:getsockname():port())); \
         return string.format('%d', u2._h)",
    );
    // B has one socket; A's second handle names no socket of B's: the call
    // answers as a closed socket does.
    let forged = b.eval(&format!(
        "sock = require'sock'; t = assert(sock.tcp()); \
         local f = setmetatable({{_s = t._s, _h = {h2}}}, getmetatable(t)); \
         local r, e = f:send('x'); \
         return tostring(r) .. ' ' .. tostring(e)"
    ));
    assert_eq!(forged, "nil closed");
    // A's sockets are untouched, before and after B is gone.
    assert_eq!(a.eval("return u2:send('x')"), "1");
    drop(b);
    a.eval("collectgarbage(); collectgarbage()");
    assert_eq!(a.eval("return u2:send('y')"), "1");
    let buf = "local b = require'ffi'.new('char[8]'); \
               local n = assert(u1:recv(b, 8)); return n .. ':' .. string.char(b[0])";
    assert_eq!(a.eval(buf), "1:x");
}

/// The number of entries of a `/proc/self` folder (descriptors, threads).
fn proc_count(dir: &str) -> usize {
    std::fs::read_dir(format!("/proc/self/{dir}")).map_or(0, |d| d.count())
}

/// A state closed while its threads wait for lookups off the loop: no crash,
/// the late results are dropped, no descriptor is left, and the resolver
/// threads stay within the pool's bound.
/// Reliability checklist: G5, K2 (docs/reliability.md).
#[test]
fn a_state_closed_with_lookups_in_flight() {
    let dir = module_dir();
    let lj = LuaJit::load();
    let fds = proc_count("fd");
    let tasks = proc_count("task");
    {
        let a = lj.state(dir);
        let parked = a.eval(
            "sock = require'sock'; sock._lookup_delay(0.3); n = 0; \
             for i = 1, 50 do sock.newthread(function() sock.addr('localhost', 80); n = n + 1 end) end; \
             sock.poll(0.01); return tostring(n)",
        );
        assert_eq!(parked, "0", "the lookups are in flight");
        assert!(
            proc_count("task") <= tasks + 4,
            "at most 4 resolver threads"
        );
        drop(a); // closed with 50 threads parked in lookups
    }
    // The abandoned lookups finish (50 of 0.3 s on 4 threads) and go.
    std::thread::sleep(std::time::Duration::from_secs_f64(4.5));
    assert!(proc_count("task") <= tasks + 4);
    assert_eq!(proc_count("fd"), fds, "no descriptor left behind");
    let b = lj.state(dir);
    assert_eq!(
        b.eval("sock = require'sock'; sock._lookup_delay(0); local r; sock.run(function() r = sock.addr('localhost', 80) end); return r.addr:port() .. ''"),
        "80"
    );
}
