-- tcp:accept through the FFI fast path: the new connection, its remote
-- address as a peer object (an sa whose sa is made only when a method needs
-- it) and its local address; the pending accept; closed listeners, collected
-- listeners and forged handles.

local t = require'tap'
local ffi = require'ffi'
local sock = require'sock'
local u = require'util'

local exp = u.exp

-- Connects a client to srv (port) and accepts it: the client, then accept's
-- values. `wait_first`: the accept is made before the client connects (the
-- pending path).
local function accept_one(srv, host, port, family, wait_first)
	local c = assert(sock.tcp(family))
	local r
	if wait_first then
		sock.newthread(function() r = {srv:accept(exp())} end)
		sock.sleep(0.01)
		assert(r == nil, 'the accept waits')
		assert(c:connect(host, port, exp()))
		while not r do sock.sleep(0.001) end
	else
		assert(c:connect(host, port, exp()))
		r = {srv:accept(exp())}
	end
	return c, r[1], r[2], r[3], r[4]
end

-- Checks that sa (accept's remote address) is the address `want` (an sa
-- object of the same address, from getsockname) in every method.
local function same_address(sa, want, family)
	t.eq(sa:family(), family)
	t.eq(sa:port(), want:port())
	t.eq(sa:tostring(), want:tostring())
	t.eq(tostring(sa), want:tostring())
	t.eq(sa:addr():tostring(), want:addr():tostring())
	local b1, n1 = sa:addr():tobinary()
	local b2, n2 = want:addr():tobinary()
	t.eq(n1, n2)
	t.eq(ffi.string(b1, n1), ffi.string(b2, n2))
	t.ok(sa == want, 'equal to the sa of the same address')
	t.ok(want == sa, 'and the other way round')
	t.ok(sa == sa)
	t.ok(sa ~= nil and not (sa == nil), 'not equal to nil')
	t.ok(sa ~= 1 and sa ~= 'x' and sa ~= {}, 'nor to other values')
	t.eq(sock.addr(sa).addr:tostring(), want:tostring(), 'sock.addr(sa) takes it')
end

for _, wait_first in ipairs{false, true} do
	local how = wait_first and 'a pending accept' or 'an accept that does not wait'
	t.test(how .. ': IPv4 remote address is an sa in every method', function()
		local res = {}
		u.run(function()
			local srv, port = u.listener()
			local c, a, ra, la = accept_one(srv, '127.0.0.1', port, nil, wait_first)
			t.eq(getmetatable(a), getmetatable(srv), 'a tcp socket')
			same_address(ra, c:getsockname(), 'inet')
			t.eq(la:tostring(), '127.0.0.1:' .. port)
			-- The connection works.
			assert(c:send('hi'))
			local buf = ffi.new'char[2]'
			assert(a:recvall(buf, 2, exp()))
			res.data = ffi.string(buf, 2)
			a:close(); c:close(); srv:close()
			-- The address outlives the sockets.
			res.after = ra:tostring()
			res.want = c:getsockname() -- closed: nil, 'closed'
		end)
		t.eq(res.data, 'hi')
		t.ok(res.after:find('^127%.0%.0%.1:%d+$'), res.after)
	end)

	t.test(how .. ': IPv6 remote address', function()
		if not u.has_ipv6() then t.skip('no IPv6 loopback (::1)') end
		u.run(function()
			local srv, port = u.listener('::1', 'inet6')
			local c, a, ra, la = accept_one(srv, '::1', port, 'inet6', wait_first)
			same_address(ra, c:getsockname(), 'inet6')
			t.ok(ra:tostring():find('^%[::1%]:%d+$'), ra:tostring())
			t.eq(la:tostring(), '[::1]:' .. port)
			a:close(); c:close(); srv:close()
		end)
	end)

	t.test(how .. ': a unix connection: its remote address an sa', function()
		local path = os.tmpname()
		os.remove(path)
		u.run(function()
			local srv = assert(sock.tcp('unix'))
			assert(srv:listen(path))
			local c, a, ra, la = accept_one(srv, path, nil, 'unix', wait_first)
			t.eq(type(ra), 'userdata')
			t.eq(ra:family(), 'unix')
			t.eq(ra:tostring(), '', 'an unnamed client')
			t.eq(la:tostring(), path)
			a:close(); c:close(); srv:close()
		end)
		os.remove(path)
	end)
end

t.test('a remote address in place of a host: bind, sendto, connect', function()
	local res = {}
	u.run(function()
		local srv, port = u.listener()
		local c, a, ra = accept_one(srv, '127.0.0.1', port)
		-- UDP on the client's port number: bind(ra), sendto(ra).
		local u1 = assert(sock.udp())
		res.bind = u1:bind(ra)
		local u2 = assert(sock.udp())
		res.sent = u2:sendto(ra, nil, 'dgram')
		local buf = ffi.new'char[16]'
		local n = assert(u1:recvnext(buf, 16, exp()))
		res.got = ffi.string(buf, n)
		assert(u2:connect(ra))
		res.peer = u2:getpeername():tostring()
		u1:close(); u2:close()
		a:close(); c:close(); srv:close()
		-- Nobody listens there: the connect is made, and refused.
		local c2 = assert(sock.tcp())
		res.connect = {c2:connect(ra, nil, exp())}
		c2:close()
	end)
	t.eq(res.bind, true)
	t.eq(res.sent, 5)
	t.eq(res.got, 'dgram')
	t.ok(res.peer:find('^127%.0%.0%.1:%d+$'), res.peer)
	t.eq(res.connect[1], nil); t.eq(res.connect[2], 'connection_refused')
end)

t.test('a damaged remote address raises, never reads past its bytes', function()
	u.run(function()
		local srv, port = u.listener()
		local c, a, ra = accept_one(srv, '127.0.0.1', port)
		local c2, a2, ra2 = accept_one(srv, '127.0.0.1', port)
		ra.len = 255; ra.b[0] = 9
		t.raises('not a socket address', function() return ra:tostring() end)
		t.raises('not a socket address', function() return ra:family() end)
		t.raises('not a socket address', function() return ra:port() end)
		t.raises('not a socket address', function() return tostring(ra) end)
		t.raises('not a socket address', function() return ra == ra2 end)
		t.raises('not a socket address', function() return sock.addr(ra) end)
		ra2.len = 27 -- an IPv4 address's bytes as IPv6: refused too
		t.raises('not a socket address', function() return ra2:tostring() end)
		t.raises("sa:port: bad argument #1 'self' (sa expected)", function() return ra.port(5) end)
		t.raises("sa:tostring: bad argument #1 'self' (sa expected)",
			function() return ra.tostring(ffi.new'char[28]') end)
		a:close(); c:close(); a2:close(); c2:close(); srv:close()
	end)
end)

t.test('accept on a closed listener, a collected one and forged handles: closed', function()
	local res = {}
	u.run(function()
		local srv = u.listener()
		local h, s = srv._h, srv._s
		srv:close()
		res.closed = {srv:accept(exp())}
		-- A collected listener: its handle names nothing any more.
		srv, s = nil, nil
		collectgarbage(); collectgarbage()
		local other = assert(sock.tcp())
		local forged = setmetatable({_s = other._s, _h = h}, getmetatable(other))
		res.collected = {forged:accept(exp())}
		for i, fh in ipairs{0, 1, 2^52, 2^53 - 1, -1, 1e300, 0/0} do
			forged._h = fh
			res['forged' .. i] = {forged:accept(exp())}
		end
		other:close()
	end)
	t.eq(res.closed[1], nil); t.eq(res.closed[2], 'closed')
	t.eq(res.collected[1], nil); t.eq(res.collected[2], 'closed')
	for i = 1, 7 do
		t.eq(res['forged' .. i][1], nil, 'forged handle ' .. i)
		t.eq(res['forged' .. i][2], 'closed')
	end
end)

t.test('a listener closed while an accept waits: the accept ends with closed', function()
	local res = {}
	u.run(function()
		local srv = u.listener()
		sock.newthread(function() res.r = {srv:accept(exp())} end)
		sock.sleep(0.01)
		srv:close()
		while not res.r do sock.sleep(0.001) end
	end)
	t.eq(res.r[1], nil); t.eq(res.r[2], 'closed')
end)

t.test('accept on a socket that is not a plain TCP one raises', function()
	local ud = assert(sock.udp())
	t.raises("tcp:accept: bad argument #1 'self' (not a TCP socket)",
		function() return sock.tcp_class.accept(ud) end)
	ud:close()
	t.raises("tcp:accept: bad argument #1 'self' (socket expected)",
		function() return sock.tcp_class.accept({}) end)
end)

t.test('an accept outside a thread that would wait: not_in_thread', function()
	local srv = u.listener()
	local r = {srv:accept()}
	t.eq(r[1], nil); t.eq(r[2], 'not_in_thread')
	-- The listener still accepts afterwards.
	u.run(function()
		local c, a, ra = accept_one(srv, '127.0.0.1', srv:getsockname():port())
		t.ok(ra:port() > 0)
		a:close(); c:close()
	end)
	srv:close()
end)

t.test('many connections: every remote address its own, the collector keeps up', function()
	local res = {ports = {}, n = 0}
	u.run(10, function()
		local srv, port = u.listener()
		for i = 1, 300 do
			local c, a, ra = accept_one(srv, '127.0.0.1', port)
			local want = c:getsockname()
			if ra:port() ~= want:port() then res.bad = i end
			if i % 3 == 0 and ra ~= want then res.bad = i end -- (the sa made)
			res.ports[ra:port()] = true
			res.n = res.n + 1
			a:close(); c:close()
			if i % 50 == 0 then collectgarbage() end
		end
		srv:close()
	end)
	t.eq(res.bad, nil)
	t.eq(res.n, 300)
end)

t.test('close through the fast path: true every time; a forged handle closes no other socket', function()
	local res = {}
	u.run(function()
		local srv, port = u.listener()
		local c, a = accept_one(srv, '127.0.0.1', port)
		local h = a._h
		res.first, res.second = a:close(), a:close()
		res.closed = a:closed()
		-- The collected socket's handle names nothing: closes nothing.
		a = nil
		collectgarbage(); collectgarbage()
		local forged = setmetatable({_s = c._s, _h = h}, getmetatable(c))
		res.forged = forged:close()
		res.c_open = not c:closed()
		for _, fh in ipairs{0, -1, 2^53, 0/0} do
			forged._h = fh
			res.forged = res.forged and forged:close()
		end
		res.c_still_open = not c:closed()
		-- The peer sees the end of the stream.
		local buf = ffi.new'char[1]'
		res.eof = {c:recv(buf, 1, exp())}
		c:close(); srv:close()
	end)
	t.eq(res.first, true); t.eq(res.second, true); t.eq(res.closed, true)
	t.eq(res.forged, true)
	t.eq(res.c_open, true); t.eq(res.c_still_open, true)
	t.eq(res.eof[1], nil); t.eq(res.eof[2], 'closed')
end)

-- The results of f(...) under pcall, errors included, as one string.
local function outcome(f, ...)
	local r = {n = 0, pcall(f, ...)}
	for i = 1, table.maxn(r) do
		-- (an error: its message, without a position or a traceback)
		r[i] = tostring(r[i]):match('^[^\n]*'):gsub('^[^:]*:%d+: ', '')
	end
	return table.concat(r, ' ', 1, table.maxn(r))
end

t.test('setopt through the fast path: as the mlua method does, in results and errors', function()
	u.run(function()
		local srv, port = u.listener()
		local c, a = accept_one(srv, '127.0.0.1', port)
		t.eq(a:setopt('tcp_nodelay', true), true); t.eq(a:getopt('tcp_nodelay'), true)
		t.eq(a:setopt('tcp_nodelay', false), true); t.eq(a:getopt('tcp_nodelay'), false)
		t.eq(a:setopt('tcp_nodelay', 1), true); t.eq(a:getopt('tcp_nodelay'), true)
		t.eq(a:setopt('tcp_nodelay', 0), true); t.eq(a:getopt('tcp_nodelay'), false)
		t.eq(a:setopt('keepalive', true), true); t.eq(a:getopt('so_keepalive'), true)
		t.eq(a:setopt('so_rcvbuf', 65536), true); t.ok(a:getopt('so_rcvbuf') >= 65536)
		local ud = assert(sock.udp())
		local cases = {
			{a, 'tcp_nodelay', true}, {a, 'tcp_nodelay', 2^31}, {a, 'tcp_nodelay', -2^31},
			{a, 'tcp_nodelay', 0.5}, {a, 'tcp_nodelay', 'yes'}, {a, 'tcp_nodelay', 0/0},
			{a, 'so_rcvbuf', true}, {a, 'so_rcvbuf', 2^40}, {a, 'so_rcvbuf', -1},
			{a, 'tcp_keepidle', 0}, {a, 'tcp_keepidle', -5}, {a, 'so_type', 1},
			{a, 'so_bogus', 1}, {a, 42, 1}, {a, 'so_linger', 5},
			{ud, 'tcp_nodelay', true}, {ud, 'ip_ttl', 300}, {ud, 'ip_ttl', 64},
		}
		for _, k in ipairs(cases) do
			local s, o, v = k[1], k[2], k[3]
			local fast = outcome(s.setopt, s, o, v)
			local slow = outcome(s._s.setopt, s._s, o, v)
			t.eq(fast, slow, ('setopt(%s, %s)'):format(tostring(o), tostring(v)))
		end
		-- Closed sockets and forged handles: nil, 'closed'.
		ud:close()
		local r = {ud:setopt('so_broadcast', true)}
		t.eq(r[1], nil); t.eq(r[2], 'closed')
		local forged = setmetatable({_s = c._s, _h = 2^52}, getmetatable(c))
		r = {forged:setopt('tcp_nodelay', true)}
		t.eq(r[1], nil); t.eq(r[2], 'closed')
		a:close(); c:close(); srv:close()
	end)
end)
