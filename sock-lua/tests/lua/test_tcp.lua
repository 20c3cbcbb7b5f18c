-- TCP: sock.tcp and every tcp row of the seed's API table (bind, setopt,
-- getopt, connect, send, recv, listen, accept, sendall, recvall, shutdown,
-- close), with the semantics of close (RST vs FIN), shutdown, and expires.
-- Loopback only; every wait is bounded by an expires.

local t = require'tap'
local ffi = require'ffi'
local sock = require'sock'
local u = require'util'

local exp = u.exp

local function str(buf, n) return ffi.string(buf, n) end

---------------------------------------------------------------- sockets

t.test("sock.tcp(): type 'tcp', family 'inet', protocol 'tcp'", function()
	local s = assert(sock.tcp())
	t.eq(s:type(), 'tcp'); t.eq(s:family(), 'inet'); t.eq(s:protocol(), 'tcp')
	t.eq(s:getopt'so_type', 'tcp')
	t.ok(tostring(s):find('^sock%.tcp %(%d+%)$'), tostring(s))
	s:close()
	local s6 = assert(sock.tcp('inet6'))
	t.eq(s6:family(), 'inet6'); t.eq(s6:type(), 'tcp'); t.eq(s6:protocol(), 'tcp')
	s6:close()
	local s4 = assert(sock.tcp('inet', 'tcp'))
	t.eq(s4:protocol(), 'tcp')
	s4:close()
	local su = assert(sock.tcp('unix'))
	t.eq(su:family(), 'unix'); t.eq(su:type(), 'tcp')
	su:close()
end)

t.test('a wrong protocol for tcp: nil, err', function()
	local s, err = sock.tcp('inet', 'udp')
	t.eq(s, nil)
	t.eq(type(err), 'string')
end)

---------------------------------------------------------------- bind

t.test("bind(): defaults to ('*', 0): all interfaces and a free port", function()
	local s = assert(sock.tcp())
	t.eq(s:bind(), true)
	local sa = s:getsockname()
	t.eq(sa:addr():tostring(), '0.0.0.0')
	t.ok(sa:port() > 0)
	s:close()
end)

t.test('bind(host, port) and bind(ai): the address is kept', function()
	local s = assert(sock.tcp())
	t.eq(s:bind('127.0.0.1', 0), true)
	local port = s:getsockname():port()
	t.eq(s:getsockname():tostring(), '127.0.0.1:' .. port)
	s:close()
	local s2 = assert(sock.tcp())
	local ai = sock.addr('127.0.0.1', port, 'tcp', 'inet')
	t.eq(s2:bind(ai), true, 'an ai in place of host, port')
	t.eq(s2:getsockname():port(), port)
	s2:close()
end)

t.test('bind twice: nil, invalid_argument', function()
	local s = assert(sock.tcp())
	assert(s:bind('127.0.0.1', 0))
	local r, err = s:bind('127.0.0.1', 0)
	t.eq(r, nil); t.eq(err, 'invalid_argument')
	s:close()
end)

---------------------------------------------------------------- setopt, getopt

t.test('setopt/getopt round trips', function()
	local s = assert(sock.tcp())
	t.eq(s:getopt'so_reuseaddr', false)
	t.eq(s:setopt('so_reuseaddr', true), true)
	t.eq(s:getopt'so_reuseaddr', true)
	t.eq(s:setopt('tcp_nodelay', true), true)
	t.eq(s:getopt'tcp_nodelay', true)
	t.eq(s:setopt('tcp_nodelay', false), true)
	t.eq(s:getopt'tcp_nodelay', false)
	t.eq(s:setopt('so_keepalive', 1), true, 'a number for a flag')
	t.eq(s:getopt'so_keepalive', true)
	t.eq(s:setopt('so_rcvbuf', 65536), true)
	t.ok(s:getopt'so_rcvbuf' >= 65536, 'Linux doubles it')
	t.eq(s:getopt'so_linger', false)
	t.eq(s:setopt('so_linger', 5), true)
	t.eq(s:getopt'so_linger', 5)
	t.eq(s:setopt('so_linger', false), true)
	t.eq(s:getopt'so_linger', false)
	t.eq(s:setopt('tcp_keepidle', 30), true)
	t.eq(s:getopt'tcp_keepidle', 30)
	t.eq(s:getopt'so_error', 0)
	t.eq(s:getopt'so_acceptconn', false)
	t.eq(s:getopt'so_domain', 'inet')
	t.eq(s:getopt'so_protocol', 'tcp')
	t.eq(s:setopt('so_sndtimeo', 1.5), true, 'a fractional number is seconds')
	t.eq(s:getopt'so_sndtimeo', 1.5)
	s:close()
end)

t.test('an option of another protocol: nil, not_supported', function()
	local d = assert(sock.udp())
	local r, err, code = d:setopt('tcp_nodelay', true)
	t.eq(r, nil); t.eq(err, 'not_supported'); t.eq(type(code), 'number')
	r, err = d:getopt('tcp_nodelay')
	t.eq(r, nil); t.eq(err, 'not_supported')
	d:close()
end)

---------------------------------------------------------------- listen, accept, connect

t.test('listen(host, port), listen(backlog, host, port); so_acceptconn', function()
	local a = assert(sock.tcp())
	t.eq(a:listen('127.0.0.1', 0), true)
	t.eq(a:getopt'so_acceptconn', true)
	t.ok(a:getsockname():port() > 0)
	local b = assert(sock.tcp())
	t.eq(b:listen(16, '127.0.0.1', 0), true)
	t.eq(b:getsockname():tostring():match'^[^:]+', '127.0.0.1')
	local c = assert(sock.tcp())
	t.eq(c:listen(), true, "defaults to ('*', 0)")
	t.eq(c:getsockname():addr():tostring(), '0.0.0.0')
	a:close(); b:close(); c:close()
end)

t.test('listen(1/0, ...): the maximum backlog; bind and listen take af', function()
	local a = assert(sock.tcp())
	t.eq(a:listen(1/0, '127.0.0.1', 0), true)
	a:close()
	local b = assert(sock.tcp())
	t.eq(b:bind('127.0.0.1', 0, 'numerichost'), true)
	b:close()
	local c = assert(sock.tcp())
	local r, err = c:bind('localhost', 0, 'numerichost')
	t.eq(r, nil); t.eq(err, 'host_not_found', 'numerichost refuses a name')
	t.eq(c:listen(8, '127.0.0.1', 0, 'numerichost numericserv'), true)
	c:close()
end)

t.test('listen on a bound socket ignores host and port', function()
	local s = assert(sock.tcp())
	assert(s:bind('127.0.0.1', 0))
	local port = s:getsockname():port()
	t.eq(s:listen('0.0.0.0', 1), true)
	t.eq(s:getsockname():tostring(), '127.0.0.1:' .. port)
	s:close()
end)

t.test('accept returns ctcp, remote_addr, local_addr', function()
	local srv, port = u.listener()
	local res = {}
	u.run(function()
		local c = assert(sock.tcp())
		assert(c:connect('127.0.0.1', port, exp()))
		local a, remote, loc = srv:accept(exp())
		res.a, res.remote, res.loc = a, remote, loc
		res.clocal = c:getsockname():tostring()
		res.cpeer = c:getpeername():tostring()
		c:close(); a:close()
	end)
	t.eq(getmetatable(res.a), getmetatable(srv), 'a tcp socket')
	t.eq(res.a:type(), 'tcp')
	t.eq(res.remote:tostring(), res.clocal, 'remote is the client address')
	t.eq(res.loc:tostring(), '127.0.0.1:' .. port, 'local is the server address')
	t.eq(res.cpeer, '127.0.0.1:' .. port)
	t.eq(res.remote:family(), 'inet')
	srv:close()
end)

t.test('connect binds the socket; connect(ai, nil) and connect(sa, nil)', function()
	local srv, port = u.listener()
	local res = {}
	u.run(function()
		local c = assert(sock.tcp())
		t.eq(c:connect('127.0.0.1', port, exp()), true)
		res.bound = c:getsockname():port() > 0
		local a = assert(srv:accept(exp()))
		c:close(); a:close()
		local c2 = assert(sock.tcp())
		res.ai = c2:connect(sock.addr('127.0.0.1', port, 'tcp', 'inet'), nil, exp())
		assert(srv:accept(exp())):close()
		c2:close()
		local c3 = assert(sock.tcp())
		res.sa = c3:connect(sock.addr('127.0.0.1', port, 'tcp', 'inet').addr, nil, exp())
		assert(srv:accept(exp())):close()
		c3:close()
		local c4 = assert(sock.tcp())
		res.named = c4:connect('localhost', tostring(port), exp())
		assert(srv:accept(exp())):close()
		c4:close()
	end)
	t.eq(res.bound, true)
	t.eq(res.ai, true); t.eq(res.sa, true); t.eq(res.named, true)
	srv:close()
end)

t.test('connect on a connected socket: already_connected', function()
	local res
	u.run(function()
		local c, a = u.pair()
		local srv, port = u.listener()
		res = {c:connect('127.0.0.1', port, exp())}
		c:close(); a:close(); srv:close()
	end)
	t.eq(res[1], nil); t.eq(res[2], 'already_connected')
end)

t.test('several threads may accept on one listener', function()
	local srv, port = u.listener()
	local accepted = 0
	u.run(function()
		for _ = 1, 3 do
			sock.newthread(function()
				local a = assert(srv:accept(exp()))
				accepted = accepted + 1
				a:close()
			end)
		end
		local cs = {}
		for i = 1, 3 do
			cs[i] = assert(sock.tcp())
			assert(cs[i]:connect('127.0.0.1', port, exp()))
		end
		sock.sleep(0.05)
		for i = 1, 3 do cs[i]:close() end
	end)
	t.eq(accepted, 3)
	srv:close()
end)

---------------------------------------------------------------- send, recv

t.test('send(s) and recv(buf, maxlen): strings and cdata, lengths', function()
	local res = {}
	u.run(function()
		local c, a = u.pair()
		t.eq(c:send('hello'), 5)
		t.eq(c:send('world!', 3), 3, 'maxlen sends a prefix')
		local b = ffi.new'uint8_t[4]'
		b[0], b[1], b[2], b[3] = 1, 2, 3, 4
		t.eq(c:send(b), 4, 'an array sends its size')
		t.eq(c:send(b, 2), 2)
		t.eq(c:send(ffi.cast('uint8_t*', b) + 2, 2), 2, 'pointer + explicit len')
		t.eq(c:send(''), 0, 'an empty send')
		local buf = ffi.new'char[64]'
		local got = ''
		while #got < 16 do
			local n = assert(a:recv(buf, 64, exp()))
			got = got .. str(buf, n)
		end
		res.got = got
		-- recv with a maxlen smaller than what is pending
		assert(c:send('abcdef'))
		sock.sleep(0.01)
		res.n1 = a:recv(buf, 2, exp())
		res.s1 = str(buf, 2)
		local p = ffi.cast('char*', buf) + 10
		res.n2 = a:recv(p, 4, exp())
		res.s2 = str(p, 4)
		c:close(); a:close()
	end)
	t.eq(res.got, 'hellowor\1\2\3\4\1\2\3\4')
	t.eq(res.n1, 2); t.eq(res.s1, 'ab')
	t.eq(res.n2, 4); t.eq(res.s2, 'cdef')
end)

t.test('buffers of every cdata kind: VLA, array, struct, a struct field, a boxed scalar', function()
	local res = {}
	u.run(function()
		local c, a = u.pair()
		local vla = ffi.new('uint8_t[?]', 3, {1, 2, 3})
		local st = ffi.new('struct { uint8_t x; uint8_t d[4]; }', {9, {4, 5, 6, 7}})
		local box = ffi.new('uint16_t', 0x0a0b)
		t.eq(c:send(vla), 3, 'a VLA sends its size')
		t.eq(c:send(st.d), 4, 'a struct field (a reference to an array) sends its size')
		t.eq(c:send(st, 1), 1, 'a struct, with a length')
		t.eq(c:send(box), 2, 'a boxed scalar sends its size')
		local got = ffi.new('uint8_t[?]', 10)
		res.all = assert(a:recvall(got, 10, exp()))
		res.got = {}
		for i = 0, 9 do res.got[i + 1] = got[i] end
		-- and receiving into each of them
		assert(c:send('\21\22\23\24\25\26\27'))
		local into = ffi.new('struct { uint8_t x; uint8_t d[4]; }')
		res.r1 = assert(a:recvall(into.d, 4, exp()))
		res.d = {into.d[0], into.d[1], into.d[2], into.d[3], into.x}
		local b2 = ffi.new('uint16_t')
		res.r2 = assert(a:recvall(b2, 2, exp()))
		res.b2 = tonumber(b2)
		res.n3 = assert(a:recv(vla, 3, exp()))
		res.v = vla[0]
		c:close(); a:close()
	end)
	t.eq(res.all, true)
	local lo, hi = 0x0b, 0x0a
	if not ffi.abi'le' then lo, hi = hi, lo end
	t.eq(table.concat(res.got, ','), table.concat({1, 2, 3, 4, 5, 6, 7, 9, lo, hi}, ','))
	t.eq(res.r1, true); t.eq(table.concat(res.d, ','), '21,22,23,24,0', 'the field, not the struct')
	t.eq(res.r2, true)
	t.eq(res.b2, ffi.abi'le' and 26 * 256 + 25 or 25 * 256 + 26)
	t.eq(res.n3, 1); t.eq(res.v, 27)
end)

t.test("a closed socket's object never reaches the socket that reuses its descriptor", function()
	local res = {}
	u.run(function()
		local c, a = u.pair()
		local fd = a._s:fd()
		a:close()
		-- New sockets get the lowest free numbers: one of them gets a's.
		local l, others = nil, {}
		for _ = 1, 64 do
			local s = assert(sock.tcp())
			if s._s:fd() == fd then l = s; break end
			others[#others + 1] = s
		end
		for _, s in ipairs(others) do s:close() end
		res.reused = l ~= nil
		if not l then c:close(); return end
		res.send = select(2, a:send('x'))
		res.recv = select(2, a:recv(ffi.new'char[4]', 4))
		res.sendall = select(2, a:sendall('x'))
		res.recvall = select(2, a:recvall(ffi.new'char[4]', 4))
		-- the new socket is untouched: still unconnected, no data went to it
		t.eq(select(2, l:recv(ffi.new'char[4]', 4)), 'not_connected')
		l:close(); c:close()
	end)
	if not res.reused then t.skip('no new socket got the closed descriptor number') end
	t.eq(res.send, 'closed'); t.eq(res.recv, 'closed')
	t.eq(res.sendall, 'closed'); t.eq(res.recvall, 'closed')
end)

t.test("a forged or stale handle: nil, 'closed', a raise, or a live socket; never freed memory", function()
	local res = {}
	u.run(function()
		local c, a = u.pair()
		-- the handle of a socket that was collected
		local x = assert(sock.tcp())
		local stale = x._h
		x = nil
		collectgarbage(); collectgarbage()
		local b = ffi.new'char[4]'
		local saved = a._h
		res.errs = {}
		for _, h in ipairs{stale, 0, 12345, 2^52, -1, 2^63, 0/0, 'x', {}} do
			a._h = h
			local r = {}
			for k, call in ipairs{
				function() return a:send('x') end, function() return a:recv(b, 4) end,
				function() return a:sendall('x') end, function() return a:recvall(b, 4) end,
			} do
				local ok, v1, v2 = pcall(call)
				-- a number that names no socket: nil, 'closed'; a value that is
				-- no handle at all: the FFI's conversion error
				r[k] = ok and tostring(v1) .. ' ' .. tostring(v2) or tostring(v1)
			end
			res.errs[#res.errs + 1] = r
		end
		-- another socket's handle reaches that (live) socket
		a._h = c._h
		res.other = a:send('y')
		a._h = saved
		-- the real handle still works: a receives what c sent
		res.n = a:recv(b, 4, exp())
		res.got = ffi.string(b, res.n)
		c:close(); a:close()
	end)
	for i, r in ipairs(res.errs) do
		for k = 1, 4 do
			t.ok(r[k] == 'nil closed' or r[k]:find('cannot convert', 1, true),
				'handle #' .. i .. ' call #' .. k .. ': ' .. r[k])
		end
	end
	t.eq(res.errs[1][1], 'nil closed', 'a collected socket\'s handle')
	t.eq(res.other, 1, "a's object with c's handle sends on c")
	t.eq(res.got, 'y', 'to a, through its own handle again')
end)

t.test('recv waits for data; other threads run meanwhile', function()
	local res = {}
	u.run(function()
		local c, a = u.pair()
		local ticks = 0
		sock.newthread(function()
			for _ = 1, 5 do sock.sleep(0.01); ticks = ticks + 1 end
			assert(c:send('late'))
		end)
		local buf = ffi.new'char[8]'
		local n = a:recv(buf, 8, exp())
		res.ticks = ticks
		res.s = str(buf, n)
		c:close(); a:close()
	end)
	t.eq(res.ticks, 5)
	t.eq(res.s, 'late')
end)

t.test("recv at end of stream (a FIN) is nil, 'closed', again and again; recv of 0 bytes is 0", function()
	local res = {}
	u.run(function()
		local c, a = u.pair()
		assert(c:send('x'))
		c:close()
		local buf = ffi.new'char[8]'
		res[1] = {a:recv(buf, 8, exp())}
		res[2] = {a:recv(buf, 8, exp())}
		res[3] = {a:recv(buf, 8, exp())}
		res[4] = {a:recv(buf, 0, exp())}
		res.closed = a:closed()
		a:close()
	end)
	t.eq(res[1][1], 1)
	for i = 2, 3 do
		t.eq(res[i][1], nil); t.eq(res[i][2], 'closed'); t.eq(res[i][3], 0)
		t.eq(type(res[i][4]), 'string')
	end
	t.eq(res[4][1], 0, 'no room: nothing to say')
	t.eq(res.closed, false, 'the socket itself stays open (it can still send)')
end)

t.test('full duplex: reads in one thread, writes in another', function()
	local N = 200
	local res = {a = 0, c = 0}
	u.run(function()
		local c, a = u.pair()
		local function writer(s, tag)
			return function()
				for i = 1, N do assert(s:sendall(('%s%04d'):format(tag, i), nil, exp())) end
			end
		end
		local function reader(s, key)
			return function()
				local buf = ffi.new'char[5]'
				for _ = 1, N do
					assert(s:recvall(buf, 5, exp()))
					res[key] = res[key] + 1
				end
			end
		end
		sock.newthread(writer(c, 'c')); sock.newthread(writer(a, 'a'))
		sock.newthread(reader(c, 'c')); sock.newthread(reader(a, 'a'))
		while res.a < N or res.c < N do sock.sleep(0.005) end
		c:close(); a:close()
	end)
	t.eq(res.a, N); t.eq(res.c, N)
end)

---------------------------------------------------------------- sendall, recvall

t.test('sendall(s|buf, [len]) -> true; recvall(buf, len) -> true', function()
	local res = {}
	u.run(function()
		local c, a = u.pair()
		local data = u.pattern(100000, 7)
		sock.newthread(function()
			res.s1 = c:sendall('head')
			res.s2 = c:sendall(data)
			res.s3 = c:sendall(ffi.cast('uint8_t*', data), 10)
			res.s4 = c:sendall('tail-and-more', 4)
		end)
		local h = ffi.new'char[4]'
		res.r1 = a:recvall(h, 4, exp())
		res.head = str(h, 4)
		local b = ffi.new('uint8_t[?]', 100000)
		res.r2 = a:recvall(b, 100000, exp())
		res.same = u.same(b, data, 100000)
		local p = ffi.cast('uint8_t*', b) + 50
		res.r3 = a:recvall(p, 10, exp())
		res.same10 = u.same(p, data, 10)
		res.r4 = a:recvall(h, 4, exp())
		res.tail = str(h, 4)
		c:close(); a:close()
	end)
	t.eq(res.s1, true); t.eq(res.s2, true); t.eq(res.s3, true); t.eq(res.s4, true)
	t.eq(res.r1, true); t.eq(res.head, 'head')
	t.eq(res.r2, true); t.eq(res.same, true)
	t.eq(res.r3, true); t.eq(res.same10, true)
	t.eq(res.r4, true); t.eq(res.tail, 'tail')
end)

t.test("recvall: end of stream first is nil, 'closed', 0, msg, received", function()
	local res
	u.run(function()
		local c, a = u.pair()
		assert(c:sendall('12345'))
		c:close()
		res = {a:recvall(ffi.new'char[10]', 10, exp())}
		a:close()
	end)
	t.eq(res[1], nil); t.eq(res[2], 'closed'); t.eq(res[3], 0); t.eq(type(res[4]), 'string')
	t.eq(res[5], 5)
end)

t.test('sendall with an expires: a timeout reports the bytes sent', function()
	local res
	u.run(function()
		local c, a = u.pair()
		local n = 32 * 1024 * 1024
		res = {c:sendall(ffi.new('char[?]', n), n, sock.clock() + 0.1)}
		res.n = n
		c:close(); a:close()
	end)
	t.eq(res[1], nil); t.eq(res[2], 'timeout')
	t.ok(res[5] > 0 and res[5] < res.n, 'partial: ' .. tostring(res[5]))
end)

t.test('recvall with an expires: a timeout reports the bytes received, and closes the socket', function()
	local res = {}
	u.run(function()
		local c, a = u.pair()
		assert(c:send('abc'))
		local buf = ffi.new'char[6]'
		res.first = {a:recvall(buf, 6, sock.clock() + 0.05)}
		res.data = str(buf, 3)
		res.closed = a:closed()
		-- the peer sees the close (a FIN, or a RST for what it sends after)
		res.peer = select(2, c:recv(buf, 6, exp()))
		c:close()
	end)
	t.eq(res.first[2], 'timeout'); t.eq(res.first[5], 3)
	t.eq(res.data, 'abc')
	t.eq(res.closed, true, "the seed: a passed deadline closes the socket")
	t.eq(res.peer, 'closed')
end)

---------------------------------------------------------------- close: RST vs FIN

-- Runs `closer(c, a)` on a fresh pair and returns what the peer's recv gets.
local function peer_sees(closer)
	local res
	u.run(function()
		local c, a = u.pair()
		closer(c, a)
		sock.sleep(0.02)
		local buf = ffi.new'char[16]'
		res = {c:recv(buf, 16, exp())}
		if res[1] == 1 then -- drain then read again
			res = {c:recv(buf, 16, exp())}
		end
		c:close()
	end)
	return res
end

t.test("close after everything was read sends a FIN: the peer's recv is nil, 'closed'", function()
	local res = peer_sees(function(c, a)
		assert(c:send('x'))
		local buf = ffi.new'char[1]'
		assert(a:recv(buf, 1, exp()) == 1)
		a:close()
	end)
	t.eq(res[1], nil); t.eq(res[2], 'closed')
end)

t.test('close without I/O sends a FIN', function()
	local res = peer_sees(function(c, a) a:close() end)
	t.eq(res[1], nil); t.eq(res[2], 'closed')
end)

t.test("close with unread data sends a RST: the peer gets 'connection_reset'", function()
	local res = peer_sees(function(c, a)
		assert(c:send('unread'))
		sock.sleep(0.01)
		a:close()
	end)
	t.eq(res[1], nil); t.eq(res[2], 'connection_reset'); t.eq(res[3], 104)
end)

t.test("close with so_linger 0 sends a RST: the peer gets 'connection_reset'", function()
	local res = peer_sees(function(c, a)
		assert(a:setopt('so_linger', 0))
		a:close()
	end)
	t.eq(res[1], nil); t.eq(res[2], 'connection_reset')
end)

t.test('a RST discards the data in flight to the closer; a FIN delivers it', function()
	local res = {}
	u.run(function()
		local c, a = u.pair()
		assert(a:send('before fin'))
		a:close()
		local buf = ffi.new'char[32]'
		local n = c:recv(buf, 32, exp())
		res.fin = str(buf, n)
		res.fin_end = select(2, c:recv(buf, 32, exp()))
		c:close()
	end)
	t.eq(res.fin, 'before fin')
	t.eq(res.fin_end, 'closed')
end)

t.test('so_linger > 0: close does not block the loop', function()
	local dt
	u.run(function()
		local c, a = u.pair()
		assert(a:setopt('so_linger', 5))
		-- fill the path so that unsent data is pending at close
		a:sendall(ffi.new('char[?]', 8 * 1024 * 1024), nil, sock.clock() + 0.05)
		local t0 = sock.clock()
		a:close()
		dt = sock.clock() - t0
		c:close()
	end)
	t.ok(dt < 0.5, 'close returned at once: ' .. dt)
end)

---------------------------------------------------------------- shutdown

t.test("shutdown('w'): the peer reads nil, 'closed' and can still send back", function()
	local res = {}
	u.run(function()
		local c, a = u.pair()
		assert(c:send('request'))
		t.eq(c:shutdown('w'), true)
		local buf = ffi.new'char[32]'
		local n = assert(a:recv(buf, 32, exp()))
		res.req = str(buf, n)
		res.eof = select(2, a:recv(buf, 32, exp()))
		res.sent = a:send('reply')
		a:shutdown('w')
		n = assert(c:recv(buf, 32, exp()))
		res.reply = str(buf, n)
		res.eof2 = select(2, c:recv(buf, 32, exp()))
		local r = {c:send('more')}
		res.send_after = r[2]
		c:close(); a:close()
	end)
	t.eq(res.req, 'request')
	t.eq(res.eof, 'closed')
	t.eq(res.sent, 5)
	t.eq(res.reply, 'reply')
	t.eq(res.eof2, 'closed')
	t.eq(res.send_after, 'broken_pipe', 'sending after shutdown(w)')
end)

t.test("shutdown('r'), shutdown('rw'), shutdown() do not block", function()
	local res = {}
	u.run(function()
		local c, a = u.pair()
		local buf = ffi.new'char[8]'
		t.eq(c:shutdown('r'), true)
		res.r = select(2, c:recv(buf, 8, exp()))
		res.still_sends = c:send('x')
		t.eq(a:shutdown('rw'), true)
		res.a_after = {a:send('x')}
		local c2, a2 = u.pair()
		t.eq(c2:shutdown(), true, "default: 'rw'")
		res.peer = select(2, a2:recv(buf, 8, exp()))
		c:close(); a:close(); c2:close(); a2:close()
	end)
	t.eq(res.r, 'closed', "recv after shutdown(r) is nil, 'closed'")
	t.eq(res.still_sends, 1)
	t.eq(res.a_after[2], 'broken_pipe')
	t.eq(res.peer, 'closed')
end)

t.test('shutdown on an unconnected socket: nil, not_connected', function()
	local s = assert(sock.tcp())
	local r, err = s:shutdown('w')
	t.eq(r, nil); t.eq(err, 'not_connected')
	s:close()
end)

t.test("the graceful close of the seed: shutdown(w), drain until nil, 'closed', close", function()
	local res = {}
	u.run(function()
		local c, a = u.pair()
		-- client pipelines requests; server answers one and closes gracefully
		assert(c:send('req1 req2 req3'))
		sock.newthread(function()
			local buf = ffi.new'char[64]'
			local n = assert(a:recv(buf, 4, exp()))
			assert(a:send('resp1'))
			a:shutdown('w')
			local err
			repeat n, err = a:recv(buf, 64, exp()) until not n
			assert(err == 'closed', err)
			a:close()
		end)
		local buf = ffi.new'char[64]'
		local got = ''
		while true do
			local n, err = c:recv(buf, 64, exp())
			if not n then assert(err == 'closed', err) break end
			got = got .. str(buf, n)
		end
		res.got = got
		c:close() -- the FIN that ends the server's drain
	end)
	t.eq(res.got, 'resp1', 'no RST cut the response')
end)

---------------------------------------------------------------- expires

t.test("recv timeout: never early, not late; the socket is closed, other waiters see 'closed'", function()
	local res = {}
	u.run(function()
		local c, a = u.pair()
		local buf = ffi.new'char[8]'
		local big = ffi.new('char[?]', 16 * 1024 * 1024) -- more than loopback takes
		-- another thread waits to send on the same socket: the send buffer full
		sock.newthread(function()
			res.writer = {a:sendall(big, nil, exp(3))}
		end)
		local t0 = sock.clock()
		local e = t0 + 0.1
		res.r = {a:recv(buf, 8, e)}
		res.dt = sock.clock() - t0
		res.late = sock.clock() - e
		res.closed = a:closed()
		res.after = {a:recv(buf, 8, exp())}
		sock.sleep(0.01)
		-- the peer sees the close: the end of the stream, or a reset
		local got
		repeat got = {c:recv(buf, 8, exp())} until not got[1]
		res.peer = got[2]
		c:close()
	end)
	t.eq(res.r[1], nil); t.eq(res.r[2], 'timeout')
	t.ok(res.late >= 0, 'not early: ' .. res.dt)
	t.ok(res.late < 0.05, 'not late: ' .. res.late)
	t.eq(res.closed, true, "the seed: a passed deadline closes the socket")
	t.eq(res.writer[2], 'closed', 'the thread waiting to send woke with closed')
	t.eq(res.after[2], 'closed', 'later calls: closed')
	t.ok(res.peer == 'closed' or res.peer == 'connection_reset', tostring(res.peer))
end)

t.test('accept timeout: never early, not late; the listener is closed', function()
	local srv, port = u.listener()
	local res = {}
	u.run(function()
		local e = sock.clock() + 0.08
		res.r = {srv:accept(e)}
		res.late = sock.clock() - e
		local c = assert(sock.tcp())
		res.c = {c:connect('127.0.0.1', port, exp())}
		res.a = {srv:accept(exp())}
		c:close()
	end)
	t.eq(res.r[2], 'timeout')
	t.ok(res.late >= 0 and res.late < 0.05, 'on time: ' .. res.late)
	t.eq(res.c[2], 'connection_refused', 'nobody listens any more')
	t.eq(res.a[2], 'closed')
end)

t.test('an expires in the past: an op that can complete does; else timeout at once', function()
	local res = {}
	u.run(function()
		local c, a = u.pair()
		assert(c:send('ready'))
		sock.sleep(0.01)
		local buf = ffi.new'char[8]'
		res.ready = a:recv(buf, 8, sock.clock() - 1)
		local t0 = sock.clock()
		res.past = {a:recv(buf, 8, sock.clock() - 1)}
		res.dt = sock.clock() - t0
		res.closed = a:closed()
		res.send = c:send('x', nil, 0)
		c:close(); a:close()
	end)
	t.eq(res.ready, 5)
	t.eq(res.past[2], 'timeout')
	t.ok(res.dt < 0.05)
	t.eq(res.closed, true)
	t.eq(res.send, 1, 'a send that can complete does, whatever the deadline')
end)

t.test("connect timeout (the listener's queue is full) closes the socket; a new one connects", function()
	local srv = assert(sock.tcp())
	assert(srv:listen(1, '127.0.0.1', 0))
	local port = srv:getsockname():port()
	local res = {}
	u.run(6, function()
		local held = {}
		for i = 1, 2 do -- backlog 1 queues 2 connections on Linux
			held[i] = assert(sock.tcp())
			assert(held[i]:connect('127.0.0.1', port, exp()))
		end
		local c = assert(sock.tcp())
		local e = sock.clock() + 0.2
		res.r = {c:connect('127.0.0.1', port, e)}
		res.late = sock.clock() - e
		res.closed = c:closed()
		res.again = {c:connect('127.0.0.1', port, exp())}
		-- make room: a new socket connects
		assert(srv:accept(exp())):close()
		assert(srv:accept(exp())):close()
		local c2 = assert(sock.tcp())
		res.retry = {c2:connect('127.0.0.1', port, exp(4))}
		res.a = srv:accept(exp())
		for i = 1, 2 do held[i]:close() end
		c2:close(); if res.a then res.a:close() end
	end)
	t.eq(res.r[1], nil); t.eq(res.r[2], 'timeout')
	t.ok(res.late >= 0 and res.late < 0.05, 'on time: ' .. res.late)
	t.eq(res.closed, true); t.eq(res.again[2], 'closed')
	t.eq(res.retry[1], true, 'connected: ' .. tostring(res.retry[2]))
	t.ok(res.a, 'the server accepted it')
	srv:close()
end)

t.test("close wakes a thread blocked in connect with nil, 'closed'", function()
	local srv = assert(sock.tcp())
	assert(srv:listen(1, '127.0.0.1', 0))
	local port = srv:getsockname():port()
	local res = {}
	u.run(function()
		local held = {}
		for i = 1, 2 do
			held[i] = assert(sock.tcp())
			assert(held[i]:connect('127.0.0.1', port, exp()))
		end
		local c = assert(sock.tcp())
		sock.newthread(function() res.r = {c:connect('127.0.0.1', port, exp(3))} end)
		local t0 = sock.clock()
		sock.sleep(0.05)
		c:close()
		sock.sleep(0.01)
		res.dt = sock.clock() - t0
		for i = 1, 2 do held[i]:close() end
	end)
	t.eq(res.r[1], nil); t.eq(res.r[2], 'closed')
	t.ok(res.dt < 1)
	srv:close()
end)

t.test('sendall/recvall of a large string and through pointer cdata (several passes)', function()
	local N = 4 * 1024 * 1024
	local pat = u.pattern(N, 9)
	local s = ffi.string(pat, N)
	local res = {}
	u.run(function()
		local c, a = u.pair()
		sock.newthread(function()
			res.s1 = c:sendall(s, nil, exp(5))
			res.s2 = c:sendall(ffi.cast('const uint8_t*', pat), N, exp(5))
		end)
		local got = ffi.new('uint8_t[?]', N)
		res.r1 = a:recvall(got, N, exp(5))
		res.same1 = u.same(got, pat, N)
		ffi.fill(got, N)
		res.r2 = a:recvall(ffi.cast('uint8_t*', got), N, exp(5))
		res.same2 = u.same(got, pat, N)
		c:close(); a:close()
	end)
	t.eq(res.s1, true); t.eq(res.s2, true)
	t.eq(res.r1, true); t.eq(res.same1, true, 'the string arrived intact')
	t.eq(res.r2, true); t.eq(res.same2, true, 'the pointer data arrived intact')
end)

---------------------------------------------------------------- IPv6

t.test('IPv6 on ::1: connect, accept, echo', function()
	if not u.has_ipv6() then t.skip('no IPv6 loopback (::1)') end
	local srv, port = u.listener('::1', 'inet6')
	local res = {}
	u.run(function()
		local c = assert(sock.tcp('inet6'))
		assert(c:connect('::1', port, exp()))
		local a, remote, loc = assert(srv:accept(exp()))
		res.remote, res.loc = remote:tostring(), loc:tostring()
		res.family = remote:family()
		assert(c:sendall('over v6'))
		local buf = ffi.new'char[7]'
		assert(a:recvall(buf, 7, exp()))
		res.data = str(buf, 7)
		res.peer = c:getpeername():tostring()
		c:close(); a:close()
	end)
	t.eq(res.data, 'over v6')
	t.eq(res.family, 'inet6')
	t.eq(res.loc, '[::1]:' .. port)
	t.ok(res.remote:find('^%[::1%]:%d+$'), res.remote)
	t.eq(res.peer, '[::1]:' .. port)
	srv:close()
end)

t.test('accept reports the local address, one object while it is the same', function()
	local res = {}
	u.run(function()
		local srv, port = u.listener('127.0.0.1')
		-- One connection: its accepted addresses, once the connect is done.
		local function one()
			local c, done = assert(sock.tcp()), false
			sock.newthread(function()
				assert(c:connect('127.0.0.1', port, u.exp()))
				done = true
			end)
			local a, remote, loc = assert(srv:accept(u.exp()))
			while not done do sock.sleep(0.001) end
			a:close(); c:close()
			return remote, loc
		end
		local locs, remotes = {}, {}
		for i = 1, 3 do
			remotes[i], locs[i] = one()
			res['port' .. i] = locs[i]:port()
		end
		res.ip1 = locs[1]:tostring()
		res.same = rawequal(locs[1], locs[2]) and rawequal(locs[2], locs[3])
		res.remotes_differ = remotes[1]:port() ~= remotes[2]:port()
		srv._local = 'not an address' -- a private field overwritten: no harm
		local _, loc = one()
		res.after = loc:port()
		srv:close()
		res.port = port
	end)
	t.eq(res.same, true, 'the same sa object for the same local address')
	t.eq(res.remotes_differ, true)
	for i = 1, 3 do t.eq(res['port' .. i], res.port) end
	t.has(res.ip1, '127.0.0.1')
	t.eq(res.after, res.port)
end)

t.test("a connection accepted outside a thread belongs to the state's loop", function()
	u.reset()
	local srv, port = u.listener()
	local c = assert(sock.tcp())
	local res = {}
	sock.newthread(function()
		assert(c:connect('127.0.0.1', port, exp()))
		assert(c:send('ping'))
	end)
	-- Outside any thread: the kernel finished the handshake, so the accept
	-- does not wait.
	local a
	for _ = 1, 1000 do
		a = srv:accept()
		if a then break end
		sock.poll(0.001)
	end
	assert(a, 'nothing to accept')
	sock.newthread(function()
		local buf = ffi.new('char[4]')
		res.got = {a:recvall(buf, 4, exp())}
		res.data = str(buf, 4)
	end)
	u.loop()
	u.check()
	t.eq(res.got[1], true, tostring(res.got[2]))
	t.eq(res.data, 'ping')
	a:close(); c:close(); srv:close()
end)

t.test("option names also in the later versions' spelling, without so_", function()
	local s = assert(sock.tcp())
	t.eq(s:setopt('reuseaddr', true), true)
	t.eq(s:getopt('so_reuseaddr'), true)
	t.eq(s:getopt('reuseaddr'), true)
	t.eq(s:getopt('rcvbuf'), s:getopt('so_rcvbuf'))
	assert(s:setopt('tcp_nodelay', true))
	u.raises_at("s:getopt: bad argument #2 'opt'", s.getopt, s, 'nodelay')
	s:close()
end)

t.test("a line reader over recv stops at the peer's FIN (nil, 'closed'), without spinning", function()
	local lines, calls, err = {}, 0, nil
	u.run(function()
		local c, a = u.pair()
		sock.newthread(function()
			assert(c:sendall('one\ntwo\nthree\n'))
			sock.sleep(0.01)
			assert(c:sendall('four\n'))
			c:close()
		end)
		local buf = ffi.new'char[5]'
		local pending = ''
		while true do
			calls = calls + 1
			local n, e = a:recv(buf, 5, exp())
			if not n then err = e break end
			pending = pending .. str(buf, n)
			for line in pending:gmatch('([^\n]*)\n') do lines[#lines + 1] = line end
			pending = pending:match('[^\n]*$')
		end
		a:close()
	end)
	t.eq(table.concat(lines, ','), 'one,two,three,four')
	t.eq(err, 'closed')
	t.ok(calls < 20, calls .. ' recv calls')
end)

t.test("an option of another platform (the original's Windows names): nil, 'not_supported'", function()
	local s = assert(sock.tcp())
	local r = {s:getopt('so_conditional_accept')}
	t.eq(r[1], nil); t.eq(r[2], 'not_supported')
	r = {s:setopt('so_exclusiveaddruse', true)}
	t.eq(r[1], nil); t.eq(r[2], 'not_supported')
	u.raises_at("s:getopt: bad argument #2 'opt'", s.getopt, s, 'so_nonsense')
	s:close()
end)
