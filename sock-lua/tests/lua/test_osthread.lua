-- OS threads (sock.osthread) and Lua states on several OS threads sharing one
-- poller (sock.epoll_fd): every event reaches the state that owns the socket;
-- values cross as copies; nothing is left behind.

local t = require'tap'
local sock = require'sock'
local u = require'util'
local ffi = require'ffi'

local function count(dir)
	local n = 0
	local p = io.popen('ls ' .. dir)
	for _ in p:lines() do n = n + 1 end
	p:close()
	return n
end
local function fds() return count('/proc/self/fd') end
local function tasks() return count('/proc/self/task') end

t.test('osthread runs a function with copied arguments; join returns its results', function()
	local th = sock.osthread(function(a, b, s, flag, none)
		return a + b, s:upper(), flag, none, 2^53
	end, 2, 3.5, 'abc', true, nil)
	local function pack(...) return {n = select('#', ...), ...} end
	local r = pack(th:join())
	t.eq(r[1], true); t.eq(r[2], 5.5); t.eq(r[3], 'ABC'); t.eq(r[4], true)
	t.eq(r[5], nil); t.eq(r[6], 2^53)
	t.eq(r.n, 6)
	u.raises_at("t:join: bad argument #1 'self' (thread already joined)", th.join, th)
end)

t.test('osthread runs a chunk of source; its errors come back with a traceback', function()
	local th = sock.osthread("local n = ...; error('boom ' .. n)", 7)
	local ok, err = th:join()
	t.eq(ok, false)
	t.has(err, 'boom 7')
	t.has(err, 'stack traceback')
	local bad = sock.osthread('this is not Lua')
	local ok2, err2 = bad:join()
	t.eq(ok2, false)
	t.has(err2, 'sock.osthread')
end)

t.test('the new state has sock, ffi and the standard libraries', function()
	local th = sock.osthread(function()
		local sock = require'sock'
		local ffi = require'ffi'
		local got
		sock.newthread(function() sock.sleep(0.01); got = 'slept' end)
		sock.start()
		return got, type(ffi.new'int[1]'), type(string.format), type(os.time), sock.clock() > 0
	end)
	local ok, got, cd, f, o, clk = th:join()
	t.eq(ok, true); t.eq(got, 'slept'); t.eq(cd, 'cdata'); t.eq(f, 'function'); t.eq(o, 'function')
	t.eq(clk, true)
end)

t.test('what cannot cross OS threads is refused', function()
	local up = 1
	u.raises_at("sock.osthread: bad argument #1 'f' (a function with upvalues",
		sock.osthread, function() return up end)
	u.raises_at("sock.osthread: bad argument #1 'f' (a C function", sock.osthread, print)
	u.raises_at("sock.osthread: bad argument #1 'f' (function or string expected, got nil)",
		sock.osthread, nil)
	u.raises_at("sock.osthread: bad argument #3 '...' (table cannot cross OS threads",
		sock.osthread, 'return 1', 1, {})
	u.raises_at("sock.osthread: bad argument #2 '...' (cdata cannot cross OS threads",
		sock.osthread, 'return 1', ffi.new'int[1]')
	local ok, err = sock.osthread('return {}'):join()
	t.eq(ok, false)
	t.has(err, 'result #1 is a table')
	u.raises_at("t:join: bad argument #1 'self'", sock.osthread('return 1').join, {})
end)

t.test('join inside a sock thread parks only that thread', function()
	local ticks, joined, at = 0, nil, nil
	u.run(10,
		function()
			for _ = 1, 1000 do
				sock.sleep(0.002)
				ticks = ticks + 1
				if joined then break end
			end
		end,
		function()
			-- the OS thread sleeps 0.2 s (in its own loop)
			local th = sock.osthread("local sock = require'sock'; "
				.. "sock.newthread(function() sock.sleep(0.2) end); sock.start(); return 'done'")
			joined = {th:join()}
			at = ticks
		end)
	t.eq(joined[1], true); t.eq(joined[2], 'done')
	t.ok(at >= 10, 'the other thread ran while this one joined: ' .. tostring(at) .. ' ticks')
end)

-- An echo server in a state of its own: `port`, and how many connections and
-- messages to expect. Returns the bytes it echoed.
local function echo_server(port, conns)
	local sock = require'sock'
	local ffi = require'ffi'
	local l = assert(sock.tcp())
	assert(l:setopt('so_reuseaddr', true))
	assert(l:listen(1024, '127.0.0.1', port))
	local total = 0
	sock.newthread(function()
		for _ = 1, conns do
			local c = assert(l:accept(sock.clock() + 20))
			sock.newthread(function()
				local buf = ffi.new'uint8_t[4096]'
				while true do
					local n = c:recv(buf, 4096, sock.clock() + 20)
					if not n or n == 0 then break end
					total = total + n
					assert(c:sendall(buf, n, sock.clock() + 20))
				end
				c:close()
			end)
		end
		l:close()
	end)
	sock.start()
	return total
end

-- A client load in a state of its own: `conns` connections to `port`, each
-- `msgs` messages of varied sizes, every byte checked. Returns the bytes.
local function echo_clients(port, conns, msgs, seed)
	local sock = require'sock'
	local ffi = require'ffi'
	pcall(ffi.cdef, 'int memcmp(const void *a, const void *b, size_t n);')
	local total, bad = 0, 0
	for i = 1, conns do
		sock.newthread(function()
			local c -- the server state may not listen yet: retry
			for _ = 1, 500 do
				c = assert(sock.tcp())
				if c:connect('127.0.0.1', port, sock.clock() + 20) then break end
				c:close(); c = nil
				sock.sleep(0.01)
			end
			assert(c, 'the server never listened')
			local out = ffi.new'uint8_t[3000]'
			local back = ffi.new'uint8_t[3000]'
			for m = 1, msgs do
				local len = 1 + (i * 13 + m * 101 + seed) % 3000
				for k = 0, len - 1 do out[k] = (i * 31 + m * 7 + k + seed) % 256 end
				assert(c:sendall(out, len, sock.clock() + 20))
				assert(c:recvall(back, len, sock.clock() + 20))
				if ffi.C.memcmp(out, back, len) ~= 0 then bad = bad + 1 end
				total = total + len
			end
			c:close()
		end)
	end
	sock.start()
	if bad > 0 then error(bad .. ' messages came back wrong') end
	return total
end

t.test('4 Lua states on 4 OS threads share one poller: 200 echo connections each', function()
	local fds0, tasks0 = fds(), tasks()
	sock.epoll_fd() -- this state's instance is the one shared
	local fd_after_share = fds()
	local ports, servers = {}, {}
	for k = 1, 2 do
		ports[k] = u.free_port()
		servers[k] = sock.osthread(echo_server, ports[k], 200)
	end
	local clients = {}
	for k = 1, 2 do
		clients[k] = sock.osthread(echo_clients, ports[k], 200, 3, k)
	end
	local want = {}
	for k = 1, 2 do
		local w = 0
		for i = 1, 200 do for m = 1, 3 do w = w + 1 + (i * 13 + m * 101 + k) % 3000 end end
		want[k] = w
	end
	for k = 1, 2 do
		local ok, n = clients[k]:join()
		t.eq(ok, true, tostring(n)); t.eq(n, want[k], 'client state ' .. k .. ': every byte checked')
	end
	for k = 1, 2 do
		local ok, n = servers[k]:join()
		t.eq(ok, true, tostring(n)); t.eq(n, want[k], 'server state ' .. k)
	end
	t.eq(fds(), fd_after_share, 'no descriptor left behind')
	t.ok(fd_after_share - fds0 <= 3, 'sharing costs this state at most 3 descriptors')
	t.eq(tasks(), tasks0, 'no OS thread left behind')
end)

-- Closes and descriptor reuse under load, across states: a state serves and
-- makes `rounds` short connections (8 at a time), each used for a few
-- messages and closed. Descriptor numbers belong to the process, so a number
-- that one state frees is soon another state's new socket, while events of
-- the old one may still be in the shared poller: none may reach the new one.
-- Returns the bytes checked.
local function churn(rounds, seed)
	local sock = require'sock'
	local ffi = require'ffi'
	pcall(ffi.cdef, 'int memcmp(const void *a, const void *b, size_t n);')
	local l = assert(sock.tcp())
	assert(l:listen(64, '127.0.0.1', 0))
	local port = l:getsockname():port()
	sock.newthread(function()
		for _ = 1, rounds do
			local c = assert(l:accept(sock.clock() + 20))
			sock.newthread(function()
				local buf = ffi.new'uint8_t[512]'
				while true do
					local n = c:recv(buf, 512, sock.clock() + 20)
					if not n or n == 0 then break end
					assert(c:sendall(buf, n, sock.clock() + 20))
				end
				c:close()
			end)
		end
		l:close()
	end)
	local checked = 0
	for w = 1, 8 do
		sock.newthread(function()
			local out, back = ffi.new'uint8_t[300]', ffi.new'uint8_t[300]'
			for r = w, rounds, 8 do
				local c = assert(sock.tcp())
				assert(c:connect('127.0.0.1', port, sock.clock() + 20))
				for m = 1, 3 do
					local len = 1 + (r * 7 + m * 31 + seed) % 300
					for k = 0, len - 1 do out[k] = (r + m * 3 + k + seed) % 256 end
					assert(c:sendall(out, len, sock.clock() + 20))
					assert(c:recvall(back, len, sock.clock() + 20))
					assert(ffi.C.memcmp(out, back, len) == 0, 'an echo came back wrong')
					checked = checked + len
				end
				c:close()
			end
		end)
	end
	sock.start()
	return checked
end

t.test('4 states sharing one poller: closes and reused descriptors under load, one state ends early', function()
	local fds0, tasks0 = fds(), tasks()
	sock.epoll_fd()
	local fd_after_share = fds()
	local rounds = {400, 400, 400, 40} -- the last state ends while the others run
	local ths = {}
	for k = 1, 4 do ths[k] = sock.osthread(churn, rounds[k], k) end
	for k = 1, 4 do
		local want = 0
		for r = 1, rounds[k] do for m = 1, 3 do want = want + 1 + (r * 7 + m * 31 + k) % 300 end end
		local ok, n = ths[k]:join()
		t.eq(ok, true, tostring(n)); t.eq(n, want, 'state ' .. k .. ': every byte checked')
	end
	t.eq(fds(), fd_after_share, 'no descriptor left behind')
	t.ok(fd_after_share - fds0 <= 3, 'sharing costs this state at most 3 descriptors')
	t.eq(tasks(), tasks0, 'no OS thread left behind')
end)
