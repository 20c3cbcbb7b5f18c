-- Garbage collection: sockets that are never closed are closed when collected
-- (their fds counted in /proc/self/fd terms before and after collectgarbage),
-- and sockets still referenced are left alone.

local t = require'tap'
local ffi = require'ffi'
local sock = require'sock'
local u = require'util'

local exp = u.exp

-- The descriptors the library opens once and keeps: the loop's epoll and
-- eventfd, and the reserve descriptor that the first listen opens (for the
-- EMFILE trick of accept).
local function warm_up()
	sock.epoll_fd()
	local s = assert(sock.tcp())
	assert(s:listen('127.0.0.1', 0))
	s:close()
end

-- Runs make() (which opens sockets and drops them), collects, and checks that
-- the process has as many descriptors as before.
local function no_leak(what, make)
	warm_up()
	u.gc()
	local before = u.fdcount()
	local opened = make()
	t.ok(u.fdcount() > before, what .. ': sockets were opened')
	u.gc()
	t.eq(u.fdcount(), before, what .. ': every fd was closed by the collector')
	return opened
end

t.test('unclosed tcp, udp and raw sockets are closed when collected', function()
	no_leak('fresh sockets', function()
		local keep = {}
		for i = 1, 30 do keep[#keep + 1] = assert(sock.tcp()) end
		for i = 1, 30 do keep[#keep + 1] = assert(sock.udp()) end
		for i = 1, 10 do keep[#keep + 1] = assert(sock.tcp('inet6')) end
		if u.is_root() then
			for i = 1, 10 do keep[#keep + 1] = assert(sock.raw('inet', 'icmp')) end
		end
		keep = nil
	end)
end)

t.test('unclosed listening, bound and connected sockets are closed when collected', function()
	no_leak('connections', function()
		local held = {}
		u.run(function()
			local srv, port = u.listener()
			for i = 1, 20 do
				local c = assert(sock.tcp())
				assert(c:connect('127.0.0.1', port, exp()))
				local a = assert(srv:accept(exp()))
				assert(c:send('unread data'))
				held[#held + 1] = c; held[#held + 1] = a
			end
			held[#held + 1] = srv
			for i = 1, 10 do held[#held + 1] = u.udp() end
		end)
		held = nil
	end)
end)

t.test('sockets made by finished threads are collected with them', function()
	no_leak('thread sockets', function()
		for i = 1, 20 do
			sock.newthread(function()
				local s = assert(sock.udp())
				assert(s:bind('127.0.0.1', 0))
				sock.sleep(0.01) -- (a timeout would close it: the seed's deadline)
			end)
		end
		u.loop(2)
		u.check()
	end)
end)

t.test('a collected socket of a connection: the peer sees the end (FIN or RST)', function()
	local res = {}
	u.run(function()
		local c, a = u.pair()
		local c2, a2 = u.pair()
		assert(c2:send('unread'))
		sock.sleep(0.01)
		a, a2 = nil, nil -- drop the server sides unclosed
		u.gc()
		local buf = ffi.new'char[8]'
		res.fin = {c:recv(buf, 8, exp())}
		res.rst = {c2:recv(buf, 8, exp())}
		c:close(); c2:close()
	end)
	t.eq(res.fin[1], nil); t.eq(res.fin[2], 'closed', 'a clean end of stream')
	t.eq(res.rst[2], 'connection_reset', 'unread data: a reset')
end)

t.test('a collected listening unix socket removes its file', function()
	local path = u.tmppath('gc.sock')
	os.remove(path)
	local s = assert(sock.tcp('unix'))
	assert(s:listen(path))
	t.ok(u.exists(path))
	s = nil
	u.gc()
	local gone = not u.exists(path)
	os.remove(path)
	t.ok(gone, 'the file was removed')
end)

t.test('referenced sockets survive a collection; closed ones collect cleanly', function()
	local res = {}
	u.run(function()
		local c, a = u.pair()
		local closed = assert(sock.udp())
		closed:close()
		closed = nil
		u.gc()
		assert(c:send('still here'))
		local buf = ffi.new'char[16]'
		local n = a:recv(buf, 16, exp())
		res.data = ffi.string(buf, n)
		c:close(); a:close()
	end)
	t.eq(res.data, 'still here')
end)

t.test('address objects from I/O are collected', function()
	local a, pa = u.udp()
	local b = u.udp()
	local seen = setmetatable({}, {__mode = 'k'})
	u.run(function()
		local buf = ffi.new'char[4]'
		for i = 1, 2000 do
			assert(b:sendto('127.0.0.1', pa, 'x'))
			local _, sa = assert(a:recvnext(buf, 4, exp()))
			seen[sa] = true
		end
	end)
	a:close(); b:close()
	u.gc()
	t.eq(next(seen), nil, 'every sa was collected')
end)

t.test('a socket object holds at most 200 bytes of Lua heap (one shared userdata environment)', function()
	local N = 2000
	local keep = {}
	for i = 1, N do keep[i] = false end
	collectgarbage(); collectgarbage()
	local before = collectgarbage('count')
	for i = 1, N do keep[i] = assert(sock.tcp()) end
	collectgarbage(); collectgarbage()
	local per = (collectgarbage('count') - before) * 1024 / N
	t.ok(per <= 200, ('%.0f bytes a socket object'):format(per))
	t.eq(debug.getfenv(keep[1]._s), debug.getfenv(keep[N]._s), 'one environment for all')
	for i = 1, N do keep[i]:close() end
end)

t.test('an accepted socket shares the one userdata environment too', function()
	local env_new, env_accepted
	u.run(5, function()
		local l = assert(sock.tcp())
		assert(l:listen('127.0.0.1', 0))
		local c = assert(sock.tcp())
		assert(c:connect('127.0.0.1', l:getsockname():port(), sock.clock() + 2))
		local s = assert(l:accept(sock.clock() + 2))
		env_new, env_accepted = debug.getfenv(c._s), debug.getfenv(s._s)
		s:close(); c:close(); l:close()
	end)
	t.eq(env_accepted, env_new)
end)
