-- The binding's cost per call on the hot paths, in nanoseconds, next to the
-- same operations from Rust (examples/percall.rs prints the Rust side).
--
--   LUA_CPATH='target/lua/?.so;;' luajit sock-lua/bench/percall.lua [n]
--
-- Each line: the operation, ns per call (best of 5 runs of n calls).
local sock = require'sock'
local ffi = require'ffi'
local N = tonumber(arg and arg[1]) or 200000

local function best(f)
	local b = math.huge
	for _ = 1, 5 do
		local t0 = sock.clock()
		f(N)
		b = math.min(b, (sock.clock() - t0) / N * 1e9)
	end
	return b
end

local l = assert(sock.tcp())
assert(l:listen('127.0.0.1', 0))
local port = l:getsockname():port()
local a, b
sock.newthread(function() a = assert(l:accept()) end)
sock.newthread(function()
	b = assert(sock.tcp())
	assert(b:connect('127.0.0.1', port))
end)
sock.start()
local buf = ffi.new('uint8_t[?]', 64)
local rows = {}
local function row(name, ns) rows[#rows + 1] = ('%-44s %8.1f'):format(name, ns) end

row('sock.clock() (a Rust call)', best(function(n)
	for _ = 1, n do sock.clock() end
end))
-- recv with nothing to read, outside a thread: the FFI fast path's first
-- step (one recv(2) returning EAGAIN: outside a thread every attempt makes
-- its syscall), then the not_in_thread result (an mlua call) that a call
-- which would wait gets there.
row('recv, nothing to read, outside a thread', best(function(n)
	for _ = 1, n do a:recv(buf, 64) end
end))
-- send 1 byte and read it back: two syscalls through the binding.
row('send 1 B + recv 1 B (no wait)', best(function(n)
	sock.newthread(function()
		for _ = 1, n do
			b:send('x', 1)
			a:recv(buf, 64)
		end
	end)
	sock.start()
end))
-- A switch: a thread yields to the loop and is resumed (sleep(0)).
row('yield + resume (sleep_until(0))', best(function(n)
	sock.newthread(function()
		for _ = 1, n do sock.sleep_until(0) end
	end)
	sock.start()
end))
-- Ping-pong: two threads, one socket pair, each message waits for its echo.
row('ping-pong round trip (2 threads, 1 loop)', best(function(n)
	local m = math.floor(n / 10)
	sock.newthread(function()
		for _ = 1, m do
			assert(a:recv(buf, 64))
			a:send(buf, 1)
		end
	end)
	sock.newthread(function()
		for _ = 1, m do
			b:send('x', 1)
			assert(b:recv(buf, 64))
		end
	end)
	sock.start()
end) * 10)
for _, r in ipairs(rows) do print(r) end
