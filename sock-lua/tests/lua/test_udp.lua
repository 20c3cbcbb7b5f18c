-- UDP: sock.udp, bind, connect (filtering and un-filtering), send, recv,
-- sendto, recvnext, empty and truncated datagrams, expires, IPv6.
-- Loopback only; every wait is bounded by an expires.

local t = require'tap'
local ffi = require'ffi'
local sock = require'sock'
local u = require'util'

local exp = u.exp

local function str(buf, n) return ffi.string(buf, n) end

t.test("sock.udp(): type 'udp', family 'inet', protocol 'udp'", function()
	local s = assert(sock.udp())
	t.eq(s:type(), 'udp'); t.eq(s:family(), 'inet'); t.eq(s:protocol(), 'udp')
	t.eq(s:getopt'so_type', 'udp')
	t.ok(tostring(s):find('^sock%.udp %(%d+%)$'), tostring(s))
	s:close()
	local s6 = assert(sock.udp('inet6'))
	t.eq(s6:family(), 'inet6'); t.eq(s6:protocol(), 'udp')
	s6:close()
	local su = assert(sock.udp('unix'))
	t.eq(su:family(), 'unix'); t.eq(su:type(), 'udp')
	su:close()
end)

t.test('udp sockets have no accept, listen, sendall, recvall, shutdown', function()
	local s = assert(sock.udp())
	t.eq(s.accept, nil); t.eq(s.listen, nil); t.eq(s.sendall, nil)
	t.eq(s.recvall, nil); t.eq(s.shutdown, nil)
	local c = assert(sock.tcp())
	t.eq(c.sendto, nil); t.eq(c.recvnext, nil)
	s:close(); c:close()
end)

t.test('sendto(host, port, s|buf) -> len; recvnext(buf, maxlen) -> len, sa', function()
	local a, pa = u.udp()
	local b, pb = u.udp()
	local res = {}
	u.run(function()
		res.n1 = b:sendto('127.0.0.1', pa, 'datagram one')
		local buf = ffi.new'uint8_t[3]'
		buf[0], buf[1], buf[2] = 7, 8, 9
		res.n2 = b:sendto('127.0.0.1', pa, buf)
		res.n3 = b:sendto('127.0.0.1', pa, 'xyz', 2)
		res.n4 = b:sendto(sock.addr('127.0.0.1', pa, 'udp', 'inet'), nil, 'by ai')
		local rb = ffi.new'char[64]'
		local n, sa = a:recvnext(rb, 64, exp())
		res.d1, res.sa = str(rb, n), sa
		n = a:recvnext(rb, 64, exp()); res.d2 = str(rb, n)
		n = a:recvnext(rb, 64, exp()); res.d3 = str(rb, n)
		local p = ffi.cast('char*', rb) + 8
		n = a:recvnext(p, 16, exp()); res.d4 = str(p, n)
	end)
	t.eq(res.n1, 12); t.eq(res.n2, 3); t.eq(res.n3, 2); t.eq(res.n4, 5)
	t.eq(res.d1, 'datagram one')
	t.eq(res.sa:tostring(), '127.0.0.1:' .. pb, 'the source address')
	t.eq(res.sa:port(), pb)
	t.eq(res.d2, '\7\8\9')
	t.eq(res.d3, 'xy')
	t.eq(res.d4, 'by ai')
	a:close(); b:close()
end)

t.test('sendto/recvnext take flags 0 and af', function()
	local a, pa = u.udp()
	local b = u.udp()
	local res = {}
	u.run(function()
		res.n = b:sendto('127.0.0.1', pa, 'f', nil, exp(), 0, 'numerichost')
		res.m = a:recvnext(ffi.new'char[4]', 4, exp(), 0)
	end)
	t.eq(res.n, 1); t.eq(res.m, 1)
	u.raises_at("udp:sendto: bad argument #7 'flags'", b.sendto, b, '127.0.0.1', pa, 'x', nil, nil, 1)
	u.raises_at("udp:recvnext: bad argument #5 'flags'", a.recvnext, a, ffi.new'char[1]', 1, nil, 2)
	a:close(); b:close()
end)

t.test('sendto binds an unbound socket', function()
	local a, pa = u.udp()
	local b = assert(sock.udp())
	local res = {}
	u.run(function()
		assert(b:sendto('127.0.0.1', pa, 'x'))
		res.port = b:getsockname():port()
		local _, sa = a:recvnext(ffi.new'char[4]', 4, exp())
		res.from = sa:port()
	end)
	t.ok(res.port > 0)
	t.eq(res.from, res.port)
	a:close(); b:close()
end)

t.test('connect then send and recv: the connected peer', function()
	local a, pa = u.udp()
	local b, pb = u.udp()
	local res = {}
	u.run(function()
		t.eq(a:connect('127.0.0.1', pb, exp()), true)
		t.eq(b:connect('127.0.0.1', pa), true)
		res.peer = a:getpeername():tostring()
		res.sent = a:send('ping')
		local buf = ffi.new'char[8]'
		local n = b:recv(buf, 8, exp())
		res.got = str(buf, n)
		assert(b:send('pong'))
		n = a:recv(buf, 8, exp())
		res.back = str(buf, n)
	end)
	t.eq(res.peer, '127.0.0.1:' .. pb)
	t.eq(res.sent, 4); t.eq(res.got, 'ping'); t.eq(res.back, 'pong')
	a:close(); b:close()
end)

t.test('connect binds an unbound socket', function()
	local b, pb = u.udp()
	local a = assert(sock.udp())
	t.eq(a:connect('127.0.0.1', pb), true)
	t.ok(a:getsockname():port() > 0)
	a:close(); b:close()
end)

t.test("send on an unconnected socket: nil, 'destination_required'", function()
	local a = u.udp()
	local r, err, code = a:send('x')
	t.eq(r, nil); t.eq(err, 'destination_required'); t.eq(type(code), 'number')
	a:close()
end)

-- Three sockets: A receives; B and C send to it. What a filter drops is
-- seen by a marker sent after it from an allowed sender arriving next (a
-- timeout would close A: the seed's deadline).
t.test('connect filters: only the peer gets through; connect(*, 0) un-filters', function()
	local A, pa = u.udp()
	local B, pb = u.udp()
	local C, pc = u.udp()
	local res = {}
	local buf = ffi.new'char[16]'
	local function next_from()
		local n, sa = A:recvnext(buf, 16, exp())
		if not n then return sa end
		return str(buf, n) .. '@' .. sa:port()
	end
	u.run(function()
		-- unconnected: both get through
		assert(B:sendto('127.0.0.1', pa, 'b1')); assert(C:sendto('127.0.0.1', pa, 'c1'))
		res.open1, res.open2 = next_from(), next_from()
		-- connected to B: C's datagrams are dropped
		assert(A:connect('127.0.0.1', pb))
		assert(C:sendto('127.0.0.1', pa, 'c2')); assert(B:sendto('127.0.0.1', pa, 'b2'))
		assert(C:sendto('127.0.0.1', pa, 'c2x')); assert(B:sendto('127.0.0.1', pa, 'mark'))
		res.toB1, res.toB2 = next_from(), next_from()
		-- recv (not recvnext) filters too
		assert(C:sendto('127.0.0.1', pa, 'c3')); assert(B:sendto('127.0.0.1', pa, 'b3'))
		local n = A:recv(buf, 16, exp())
		res.recvB = str(buf, n)
		-- connect again: switches to C
		assert(A:connect('127.0.0.1', pc))
		assert(B:sendto('127.0.0.1', pa, 'b4')); assert(C:sendto('127.0.0.1', pa, 'c4'))
		assert(B:sendto('127.0.0.1', pa, 'b4x')); assert(C:sendto('127.0.0.1', pa, 'mark'))
		res.toC1, res.toC2 = next_from(), next_from()
		res.sendC = A:send('to c')
		n = C:recv(buf, 16, exp()); res.gotC = str(buf, n)
		-- connect('*', 0): no filter again
		t.eq(A:connect('*', 0), true)
		assert(B:sendto('127.0.0.1', pa, 'b5')); assert(C:sendto('127.0.0.1', pa, 'c5'))
		res.un1, res.un2 = next_from(), next_from()
		res.port = A:getsockname():port()
		res.nopeer = select(2, A:getpeername())
	end)
	t.eq(res.open1, 'b1@' .. pb); t.eq(res.open2, 'c1@' .. pc)
	t.eq(res.toB1, 'b2@' .. pb); t.eq(res.toB2, 'mark@' .. pb, "C's were dropped")
	t.eq(res.recvB, 'b3')
	t.eq(res.toC1, 'c4@' .. pc); t.eq(res.toC2, 'mark@' .. pc, "B's were dropped")
	t.eq(res.sendC, 4); t.eq(res.gotC, 'to c')
	t.eq(res.un1, 'b5@' .. pb); t.eq(res.un2, 'c5@' .. pc)
	t.eq(res.port, pa, 'un-filtering keeps the port')
	t.eq(res.nopeer, 'not_connected')
	A:close(); B:close(); C:close()
end)

t.test('a second disconnect: not_connected', function()
	local A = u.udp()
	local B, pb = u.udp()
	assert(A:connect('127.0.0.1', pb))
	t.eq(A:connect('*', 0), true)
	local r, err = A:connect('*', 0)
	t.eq(r, nil); t.eq(err, 'not_connected')
	A:close(); B:close()
end)

t.test('sendto on a connected socket still reaches other addresses', function()
	local A = u.udp()
	local B, pb = u.udp()
	local C, pc = u.udp()
	local res = {}
	u.run(function()
		assert(A:connect('127.0.0.1', pb))
		res.r = {A:sendto('127.0.0.1', pc, 'to c')}
		if res.r[1] then
			local buf = ffi.new'char[8]'
			local n = C:recvnext(buf, 8, exp())
			res.got = str(buf, n)
		end
	end)
	t.eq(res.r[1], 4, 'Linux sends it (' .. tostring(res.r[2]) .. ')')
	t.eq(res.got, 'to c')
	A:close(); B:close(); C:close()
end)

t.test('empty datagrams: sent and received with length 0', function()
	local a, pa = u.udp()
	local b, pb = u.udp()
	local res = {}
	u.run(function()
		res.n1 = b:sendto('127.0.0.1', pa, '')
		res.n2 = b:sendto('127.0.0.1', pa, ffi.new'char[1]', 0)
		assert(b:connect('127.0.0.1', pa))
		res.n3 = b:send('')
		local buf = ffi.new'char[8]'
		local n, sa = a:recvnext(buf, 8, exp())
		res.r1, res.sa = n, sa and sa:port()
		res.r2 = a:recvnext(buf, 8, exp())
		res.r3 = a:recv(buf, 8, exp())
		res.r4 = select(2, a:recv(buf, 8, sock.clock() + 0.03))
	end)
	t.eq(res.n1, 0); t.eq(res.n2, 0); t.eq(res.n3, 0)
	t.eq(res.r1, 0); t.eq(res.sa, pb)
	t.eq(res.r2, 0); t.eq(res.r3, 0)
	t.eq(res.r4, 'timeout', 'three datagrams, no more')
	a:close(); b:close()
end)

t.test("a datagram longer than maxlen: recvnext gives maxlen, sa, 'truncated'; recv: message_too_big", function()
	local a, pa = u.udp()
	local b, pb = u.udp()
	local res = {}
	u.run(function()
		assert(b:sendto('127.0.0.1', pa, 'abcdefghij'))
		assert(b:sendto('127.0.0.1', pa, 'next'))
		local buf = ffi.new'char[4]'
		res.r = {a:recvnext(buf, 4, exp())}
		res.kept = str(buf, 4)
		local n, _, cut = a:recvnext(buf, 4, exp())
		res.next = {n, cut}
		res.nextdata = str(buf, n)
		-- recv (connected) reports truncation as an error, with the bytes kept
		assert(a:connect('127.0.0.1', b:getsockname():port()))
		assert(b:sendto('127.0.0.1', pa, '123456'))
		res.r2 = {a:recv(buf, 3, exp())}
		res.kept2 = str(buf, 3)
	end)
	t.eq(res.r[1], 4, 'the bytes that fit')
	t.eq(res.r[2]:port(), pb); t.eq(res.r[3], 'truncated')
	t.eq(res.kept, 'abcd')
	t.eq(res.next[1], 4); t.eq(res.next[2], nil, 'a datagram that fits is not cut')
	t.eq(res.nextdata, 'next', 'the rest was dropped; the next one arrives whole')
	t.eq(res.r2[2], 'message_too_big'); t.eq(res.r2[5], 3); t.eq(res.kept2, '123')
	a:close(); b:close()
end)

t.test("an over-size datagram: nil, 'message_too_big'; the socket stays usable", function()
	local a, pa = u.udp()
	local b = u.udp()
	local res = {}
	u.run(function()
		local big = ffi.new('char[?]', 70000)
		res.r = {b:sendto('127.0.0.1', pa, big)}
		res.after = b:sendto('127.0.0.1', pa, 'ok')
		local buf = ffi.new'char[8]'
		local n = a:recvnext(buf, 8, exp())
		res.got = str(buf, n)
	end)
	t.eq(res.r[1], nil); t.eq(res.r[2], 'message_too_big'); t.eq(res.r[3], 90)
	t.eq(res.after, 2); t.eq(res.got, 'ok')
	a:close(); b:close()
end)

t.test('a datagram as big as it gets arrives whole', function()
	local a, pa = u.udp()
	local b = u.udp()
	assert(a:setopt('so_rcvbuf', 1024 * 1024))
	local res = {}
	local N = 65507
	u.run(function()
		local data = u.pattern(N, 3)
		res.sent = b:sendto('127.0.0.1', pa, data)
		local buf = ffi.new('uint8_t[?]', N)
		res.n = a:recvnext(buf, N, exp())
		res.same = u.same(buf, data, N)
	end)
	t.eq(res.sent, N); t.eq(res.n, N); t.eq(res.same, true)
	a:close(); b:close()
end)

t.test('recvnext timeout: not early, not late; the socket is closed', function()
	local a, pa = u.udp()
	local b = u.udp()
	local res = {}
	u.run(function()
		local e = sock.clock() + 0.06
		res.r = {a:recvnext(ffi.new'char[4]', 4, e)}
		res.late = sock.clock() - e
		res.closed = a:closed()
		res.after = {a:recvnext(ffi.new'char[4]', 4, exp())}
	end)
	t.eq(res.r[1], nil); t.eq(res.r[2], 'timeout'); t.eq(res.r[3], 0)
	t.ok(res.late >= 0 and res.late < 0.05, 'on time: ' .. res.late)
	t.eq(res.closed, true); t.eq(res.after[2], 'closed')
	b:close()
end)

t.test('a blocked recvnext lets other threads run; close wakes it with closed', function()
	local a = u.udp()
	local res = {ticks = 0}
	u.run(function()
		sock.newthread(function()
			res.r = {a:recvnext(ffi.new'char[4]', 4, exp(3))}
		end)
		for _ = 1, 3 do sock.sleep(0.01); res.ticks = res.ticks + 1 end
		a:close()
	end)
	t.eq(res.ticks, 3)
	t.eq(res.r[1], nil); t.eq(res.r[2], 'closed')
end)

t.test('connected udp: a closed peer port makes recv fail with connection_refused', function()
	local a = u.udp()
	local port = u.free_port()
	local res = {}
	u.run(function()
		assert(a:connect('127.0.0.1', port))
		assert(a:send('anyone?'))
		res.r = {a:recv(ffi.new'char[4]', 4, exp(1))}
	end)
	t.eq(res.r[1], nil); t.eq(res.r[2], 'connection_refused')
	a:close()
end)

t.test('udp bind to a used port: address_already_in_use; so_reuseaddr shares it', function()
	local a, pa = u.udp()
	local b = assert(sock.udp())
	local r, err = b:bind('127.0.0.1', pa)
	t.eq(r, nil); t.eq(err, 'address_already_in_use')
	b:close(); a:close()
	local c = assert(sock.udp()); assert(c:setopt('so_reuseaddr', true))
	assert(c:bind('127.0.0.1', 0))
	local port = c:getsockname():port()
	local d = assert(sock.udp()); assert(d:setopt('so_reuseaddr', true))
	t.eq(d:bind('127.0.0.1', port), true)
	c:close(); d:close()
end)

t.test('IPv6 on ::1: sendto, recvnext with the source address', function()
	if not u.has_ipv6() then t.skip('no IPv6 loopback (::1)') end
	local a, pa = u.udp('::1', 'inet6')
	local b, pb = u.udp('::1', 'inet6')
	local res = {}
	u.run(function()
		assert(b:sendto('::1', pa, 'six'))
		local buf = ffi.new'char[8]'
		local n, sa = a:recvnext(buf, 8, exp())
		res.got, res.sa = str(buf, n), sa
		assert(a:connect('::1', pb))
		assert(a:send('back'))
		n = b:recv(buf, 8, exp())
		res.back = str(buf, n)
	end)
	t.eq(res.got, 'six')
	t.eq(res.sa:tostring(), '[::1]:' .. pb)
	t.eq(res.sa:family(), 'inet6')
	t.eq(res.back, 'back')
	a:close(); b:close()
end)
