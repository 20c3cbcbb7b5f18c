-- util.lua: helpers shared by the sock test files (not a test file itself).
--
--   local u = require'util'
--   u.run(function() ... end, function() ... end) -- threads, driven to the end
--
-- The loop is always driven with a bounded sock.poll loop (u.loop), and thread
-- failures are recorded through sock.onerror (u.errors) and turned into a
-- failure of the test by u.run / u.check.

local t = require'tap'
local ffi = require'ffi'
local sock = require'sock'

local u = {}

u.errors = {} -- errors reported by sock.onerror since the last u.reset()

-- Records the failures of threads (the recorder every test file relies on).
function u.record_errors()
	sock.onerror(function(err, co)
		u.errors[#u.errors + 1] = tostring(err)
	end)
end
u.record_errors()

function u.reset()
	u.errors = {}
end

-- Fails the calling test if a thread failed since the last reset.
function u.check(level)
	if #u.errors > 0 then
		local errs = u.errors
		u.errors = {}
		error('a thread failed:\n' .. table.concat(errs, '\n---\n'), (level or 1) + 1)
	end
end

-- Drives the loop with sock.poll until it is empty (every thread finished);
-- fails after `limit` seconds (default 5). Returns the time it took.
-- (SOCK_TEST_TIME_SCALE multiplies the limit: scripts/memcheck.sh runs the
-- suite under valgrind, some ten times slower.)
local TIME_SCALE = math.max(1, tonumber(os.getenv('SOCK_TEST_TIME_SCALE')) or 1)
function u.loop(limit, level)
	limit = (limit or 5) * TIME_SCALE
	local t0 = sock.clock()
	local deadline = t0 + limit
	while true do
		local ok, err = sock.poll(0.05)
		if not ok and err == 'empty' then return sock.clock() - t0 end
		if not ok and err ~= 'timeout' then
			error('sock.poll failed: ' .. tostring(err), (level or 1) + 1)
		end
		if sock.clock() > deadline then
			error(('the loop did not finish within %gs'):format(limit), (level or 1) + 1)
		end
	end
end

-- Runs each function as a sock thread, drives the loop to the end (limit: a
-- number as the first argument, default 5 s) and fails if a thread failed.
-- Returns the time the loop took.
function u.run(...)
	local limit = 5
	local first = 1
	if type((...)) == 'number' then limit = (...); first = 2 end
	u.reset()
	for i = first, select('#', ...) do
		sock.newthread((select(i, ...)))
	end
	local dt = u.loop(limit, 2)
	u.check(2)
	return dt
end

-- An expiration time `s` seconds from now.
function u.exp(s)
	return sock.clock() + (s or 2)
end

-- A listening TCP socket on 127.0.0.1 (or `host`) and a free port: srv, port.
function u.listener(host, family)
	local srv = assert(sock.tcp(family))
	assert(srv:setopt('so_reuseaddr', true))
	assert(srv:listen(host or '127.0.0.1', 0))
	return srv, srv:getsockname():port()
end

-- A connected pair of TCP sockets on loopback (needs to run in a thread):
-- client, server-side.
function u.pair(host, family)
	local srv, port = u.listener(host, family)
	local c = assert(sock.tcp(family))
	local got
	sock.newthread(function()
		got = assert(srv:accept(u.exp()))
	end)
	assert(c:connect(host or '127.0.0.1', port, u.exp()))
	while not got do assert(sock.sleep(0.001) == nil) end
	srv:close()
	return c, got
end

-- A UDP socket bound to 127.0.0.1 (or `host`) on a free port: s, port.
function u.udp(host, family)
	local s = assert(sock.udp(family))
	assert(s:bind(host or '127.0.0.1', 0))
	return s, s:getsockname():port()
end

-- A free port (bound once, then released).
function u.free_port()
	local s = assert(sock.tcp())
	assert(s:bind('127.0.0.1', 0))
	local port = s:getsockname():port()
	s:close()
	return port
end

-- The number of open file descriptors of this process.
ffi.cdef[[
int fcntl(int fd, int cmd, ...);
int getpid(void);
unsigned int geteuid(void);
]]
function u.fdcount(max)
	local n = 0
	for fd = 0, (max or 4096) - 1 do
		if ffi.C.fcntl(fd, 1 --[[F_GETFD]]) ~= -1 then n = n + 1 end
	end
	return n
end

-- Full garbage collection (twice: finalizers run in the first cycle).
function u.gc()
	collectgarbage()
	collectgarbage()
end

-- Whether the process runs as root.
function u.is_root()
	if os.getenv'USER' == 'root' then return true end
	local p = io.popen'id -u'
	local id = p and p:read'*l'
	if p then p:close() end
	return id == '0'
end

-- Whether ::1 can be used (bind a UDP socket to it).
function u.has_ipv6()
	local s = sock.udp'inet6'
	if not s then return false end
	local ok = s:bind('::1', 0)
	s:close()
	return ok and true or false
end

-- A path in /tmp unique to this process: /tmp/sock-lua-<pid>-<name>.
function u.tmppath(name)
	return ('/tmp/sock-lua-%d-%s'):format(ffi.C.getpid(), name)
end

function u.exists(path)
	local f = io.open(path, 'r')
	if f then f:close() return true end
	-- a socket file cannot be opened: ask the shell
	local p = io.popen('test -e ' .. path .. ' && echo yes')
	local r = p:read'*l'
	p:close()
	return r == 'yes'
end

-- The luajit running this suite and the LUA_CPATH/LUA_PATH it needs, to run
-- snippets in a fresh process: returns the command's output (stdout+stderr).
function u.subprocess(code)
	local exe = arg and arg[-1] or 'luajit'
	local f = os.tmpname()
	local h = assert(io.open(f, 'w'))
	h:write(code)
	h:close()
	local cpath = os.getenv'LUA_CPATH' or package.cpath
	local cmd = ("LUA_CPATH='%s' '%s' '%s' 2>&1"):format(cpath, exe, f)
	local p = assert(io.popen(cmd))
	local out = p:read'*a'
	p:close()
	os.remove(f)
	return out
end

-- Whether the error text `e` (a string or sock's error object) starts with
-- `prefix`: raised errors name the function first.
function u.raises_at(prefix, fn, ...)
	local text = t.raises(nil, fn, ...)
	if text:sub(1, #prefix) ~= prefix then
		error(('expected an error starting with %q, got %q'):format(prefix, text), 2)
	end
	return text
end

-- A deterministic byte pattern of `n` bytes in a new uint8_t array.
function u.pattern(n, seed)
	local b = ffi.new('uint8_t[?]', n)
	local x = seed or 1
	for i = 0, n - 1 do
		x = (x * 1103515245 + 12345) % 2147483648
		b[i] = math.floor(x / 65536) % 256
	end
	return b
end

ffi.cdef'int memcmp(const void *a, const void *b, size_t n);'
function u.same(a, b, n)
	return ffi.C.memcmp(a, b, n) == 0
end

return u
