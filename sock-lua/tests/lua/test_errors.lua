-- Errors: errors raised in threads (sock.onerror), bad arguments (raised,
-- naming the function and the argument), and runtime failures (nil, err, code,
-- msg with the normalized names).

local t = require'tap'
local ffi = require'ffi'
local sock = require'sock'
local u = require'util'

local exp = u.exp

---------------------------------------------------------------- errors in threads

t.test('onerror(f) gets the error of a thread, with a traceback, and the thread', function()
	local got = {}
	sock.onerror(function(err, co) got[#got + 1] = {err = err, co = co} end)
	local co = sock.newthread(function()
		sock.sleep(0.001)
		local function inner() error('boom in thread') end
		inner()
	end)
	local ok, e = pcall(u.loop, 2)
	u.record_errors()
	assert(ok, e)
	t.eq(#got, 1)
	t.eq(type(got[1].err), 'string')
	t.has(got[1].err, 'boom in thread')
	t.has(got[1].err, 'test_errors.lua:', 'the position of the error')
	t.has(got[1].err, 'stack traceback:')
	t.has(got[1].err, "in function 'inner'", 'the traceback shows the thread\'s stack')
	t.eq(got[1].co, co)
end)

t.test('an error before the first blocking call is reported too; newthread returns', function()
	local got = {}
	sock.onerror(function(err, co) got[#got + 1] = err end)
	local ok, co = pcall(sock.newthread, function() error('at once') end)
	u.record_errors()
	t.ok(ok, 'newthread does not raise the error of its thread')
	t.eq(type(co), 'thread')
	t.eq(#got, 1)
	t.has(got[1], 'at once')
	u.loop(1)
end)

t.test('the other threads go on after a thread fails', function()
	local got = {}
	sock.onerror(function(err) got[#got + 1] = err end)
	local ticks = 0
	sock.newthread(function()
		for i = 1, 5 do sock.sleep(0.01); ticks = ticks + 1 end
	end)
	sock.newthread(function() sock.sleep(0.015); error('dies early') end)
	sock.newthread(function() sock.sleep(0.005); error({code = 42}) end)
	local ok, e = pcall(u.loop, 2)
	u.record_errors()
	assert(ok, e)
	t.eq(ticks, 5)
	t.eq(#got, 2)
	t.eq(type(got[1]), 'table', 'a non-string error value is passed as it is')
	t.eq(got[1].code, 42)
	t.has(got[2], 'dies early')
end)

t.test('a failing onerror handler does not stop the loop', function()
	local out = u.subprocess[[
		local sock = require'sock'
		sock.onerror(function() error('handler fails') end)
		sock.newthread(function() error('first') end)
		local done = false
		sock.newthread(function() sock.sleep(0.01); done = true end)
		sock.start()
		io.stdout:write('done=', tostring(done), '\n')
	]]
	t.has(out, 'done=true')
	t.has(out, 'handler fails')
end)

t.test('the default onerror writes the error and its traceback to stderr', function()
	local out = u.subprocess[[
		local sock = require'sock'
		sock.newthread(function() sock.sleep(0.001); error('default handler test') end)
		local other = false
		sock.newthread(function() sock.sleep(0.01); other = true end)
		sock.start()
		io.stdout:write('other=', tostring(other), '\n')
	]]
	t.has(out, 'sock: thread ')
	t.has(out, 'default handler test')
	t.has(out, 'stack traceback:')
	t.has(out, 'other=true')
end)

t.test("onerror is per module: a reload does not take the old module's reports", function()
	local old = sock
	local old_got, new_got = {}, {}
	old.onerror(function(err) old_got[#old_got + 1] = err end)
	package.loaded.sock = nil
	local new = require'sock'
	package.loaded.sock = old
	new.onerror(function(err) new_got[#new_got + 1] = err end)
	old.newthread(function() error('from old') end)
	new.newthread(function() error('from new') end)
	u.record_errors()
	t.eq(#old_got, 1, 'the old module reports its thread')
	t.has(old_got[1] or '', 'from old')
	t.eq(#new_got, 1, 'the new module reports its thread')
	t.has(new_got[1] or '', 'from new')
end)

t.test('onerror(non-function) raises', function()
	t.raises("sock.onerror: bad argument #1 'f' (function expected)", sock.onerror, 'x')
	t.raises("sock.onerror: bad argument #1 'f'", sock.onerror)
end)

---------------------------------------------------------------- bad arguments

-- Every function with arguments of the wrong type: raised errors whose first
-- line starts with the function's name and names the argument.
t.test('bad arguments of the module functions raise', function()
	u.raises_at("sock.tcp: bad argument #1 'family'", sock.tcp, 1)
	u.raises_at("sock.tcp: bad argument #1 'family'", sock.tcp, 'bogus')
	u.raises_at("sock.tcp: bad argument #2 'protocol'", sock.tcp, 'inet', 'bogus')
	u.raises_at("sock.udp: bad argument #1 'family'", sock.udp, true)
	u.raises_at("sock.udp: bad argument #2 'protocol'", sock.udp, 'inet', {})
	u.raises_at("sock.raw: bad argument #1 'family'", sock.raw, {})
	u.raises_at("sock.newthread: bad argument #1 'func'", sock.newthread, 1)
	u.raises_at("sock.newthread: bad argument #1 'func'", sock.newthread)
	u.raises_at("sock.poll: bad argument #1 'timeout'", sock.poll, 'x')
	u.raises_at("sock.sleep: bad argument #1 's'", sock.sleep, 'x')
	u.raises_at("sock.sleep: bad argument #1 's'", sock.sleep)
	u.raises_at("sock.sleep_until: bad argument #1 't'", sock.sleep_until, {})
	u.raises_at("sock.epoll_fd: bad argument #1 'epfd'", sock.epoll_fd, 'x')
	u.raises_at("sock.cowrap: bad argument #1 'f'", sock.cowrap, 1)
end)

t.test('bad arguments of socket methods raise', function()
	local s = assert(sock.tcp())
	local d = assert(sock.udp())
	local b4 = ffi.new'char[4]'
	u.raises_at("s:bind: bad argument #2 'host'", s.bind, s, {})
	u.raises_at("s:bind: bad argument #3 'port'", s.bind, s, '127.0.0.1', {})
	u.raises_at("s:bind: bad argument #4 'af'", s.bind, s, '127.0.0.1', 0, 'bogus')
	u.raises_at("s:setopt: bad argument #2 'opt'", s.setopt, s, 'so_bogus', 1)
	u.raises_at("s:setopt: bad argument #2 'opt'", s.setopt, s, {}, 1)
	u.raises_at("s:setopt: bad argument #2 'opt'", s.setopt, s, nil, 1)
	u.raises_at("s:setopt: bad argument #3 'value'", s.setopt, s, 'so_rcvbuf', {})
	u.raises_at("s:setopt: bad argument #3 'value'", s.setopt, s, 'so_rcvbuf', 'abc')
	u.raises_at("s:setopt: bad argument #3 'value'", s.setopt, s, 'so_reuseaddr', 'yes')
	u.raises_at("s:setopt: bad argument #2 'opt' (socket option so_type is read-only)",
		s.setopt, s, 'so_type', 1)
	u.raises_at("s:getopt: bad argument #2 'opt'", s.getopt, s, 'so_bogus')
	u.raises_at("s:getopt: bad argument #2 'opt'", s.getopt, s, {})
	u.raises_at("s:getopt: bad argument #2 'opt'", s.getopt, s)
	u.raises_at("tcp:connect: bad argument #2 'host'", s.connect, s, {}, 1)
	u.raises_at("tcp:connect: bad argument #3 'port'", s.connect, s, '127.0.0.1', {})
	u.raises_at("tcp:connect: bad argument #4 'expires'", s.connect, s, '127.0.0.1', 1, 'x')
	u.raises_at("s:send: bad argument #2 'buf'", s.send, s, {})
	u.raises_at("s:send: bad argument #2 'buf'", s.send, s)
	u.raises_at("s:send: bad argument #3 'len'", s.send, s, 'abc', 'x')
	u.raises_at("s:send: bad argument #3 'len'", s.send, s, 'abc', -1)
	u.raises_at("s:send: bad argument #4 'expires'", s.send, s, 'abc', 1, 'x')
	u.raises_at("s:recv: bad argument #2 'buf'", s.recv, s, 'a string', 3)
	u.raises_at("s:recv: bad argument #2 'buf'", s.recv, s, {}, 3)
	u.raises_at("s:recv: bad argument #3 'len'", s.recv, s, b4)
	u.raises_at("s:recv: bad argument #3 'len'", s.recv, s, b4, 'x')
	u.raises_at("s:recv: bad argument #4 'expires'", s.recv, s, b4, 4, {})
	u.raises_at("tcp:listen: bad argument #3 'host'", s.listen, s, {})
	u.raises_at("tcp:listen: bad argument #4 'port'", s.listen, s, '127.0.0.1', {})
	u.raises_at("tcp:listen: bad argument #3 'host'", s.listen, s, 5, {})
	u.raises_at("tcp:accept: bad argument #2 'expires'", s.accept, s, 'x')
	u.raises_at("tcp:sendall: bad argument #2 'buf'", s.sendall, s, {})
	u.raises_at("tcp:sendall: bad argument #3 'len'", s.sendall, s, 'ab', 3)
	u.raises_at("tcp:recvall: bad argument #2 'buf'", s.recvall, s, 'ab', 2)
	u.raises_at("tcp:recvall: bad argument #3 'len'", s.recvall, s, b4)
	u.raises_at("tcp:shutdown: bad argument #2 'how'", s.shutdown, s, 'x')
	u.raises_at("tcp:shutdown: bad argument #2 'how'", s.shutdown, s, {})
	u.raises_at("udp:connect: bad argument #2 'host'", d.connect, d, {}, 1)
	u.raises_at("udp:connect: bad argument #4 'expires'", d.connect, d, '127.0.0.1', 1, 'x')
	u.raises_at("udp:sendto: bad argument #2 'host'", d.sendto, d, {}, 1, 'x')
	u.raises_at("udp:sendto: bad argument #3 'port'", d.sendto, d, '127.0.0.1', {}, 'x')
	u.raises_at("udp:sendto: bad argument #4 'buf'", d.sendto, d, '127.0.0.1', 1, {})
	u.raises_at("udp:sendto: bad argument #5 'len'", d.sendto, d, '127.0.0.1', 1, 'x', 2)
	u.raises_at("udp:sendto: bad argument #6 'expires'", d.sendto, d, '127.0.0.1', 1, 'x', 1, 'x')
	u.raises_at("udp:recvnext: bad argument #2 'buf'", d.recvnext, d, 'x', 1)
	u.raises_at("udp:recvnext: bad argument #3 'len'", d.recvnext, d, b4)
	u.raises_at("udp:recvnext: bad argument #4 'expires'", d.recvnext, d, b4, 4, 'x')
	u.raises_at("s:send: bad argument #1 'self'", s.send, nil, 'x')
	u.raises_at("s:close: bad argument #1 'self'", s.close, {})
	u.raises_at("s:type: bad argument #1 'self'", s.type, 'x')
	s:close(); d:close()
end)

t.test('setopt/getopt: a bad name raises at #2, a bad value at #3, with the core messages', function()
	local s = assert(sock.tcp())
	local d = assert(sock.udp())
	u.raises_at([[s:setopt: bad argument #2 'opt' (unknown socket option "so_bogus"; valid options: ip_add_membership, ]],
		s.setopt, s, 'so_bogus', 1)
	u.raises_at([[s:getopt: bad argument #2 'opt' (unknown socket option "SO_TYPE"; valid options: ]],
		s.getopt, s, 'SO_TYPE')
	-- The Lua type of the value is checked first, then the name.
	u.raises_at("s:setopt: bad argument #3 'value' (boolean, number or string expected, got table)",
		s.setopt, s, 'so_bogus', {})
	u.raises_at("s:setopt: bad argument #3 'value' (boolean, number or string expected, got nil)",
		s.setopt, s, 'so_type')
	u.raises_at("s:getopt: bad argument #2 'opt' (socket option ip_add_membership is write-only)",
		d.getopt, d, 'ip_add_membership')
	-- A value of the wrong type for the option.
	u.raises_at("s:setopt: bad argument #3 'value' (socket option so_rcvbuf takes an integer, not Secs(1.5))",
		s.setopt, s, 'so_rcvbuf', 1.5)
	u.raises_at([[s:setopt: bad argument #3 'value' (socket option tcp_nodelay takes a boolean, not Str("yes"))]],
		s.setopt, s, 'tcp_nodelay', 'yes')
	u.raises_at("s:setopt: bad argument #3 'value' (socket option tcp_nodelay takes a boolean, not Secs(0.5))",
		s.setopt, s, 'tcp_nodelay', 0.5)
	u.raises_at("s:setopt: bad argument #3 'value' (socket option so_linger takes false or seconds, not Bool(true))",
		s.setopt, s, 'so_linger', true)
	u.raises_at([[s:setopt: bad argument #3 'value' (socket option so_sndtimeo takes seconds, not Str("1"))]],
		s.setopt, s, 'so_sndtimeo', '1')
	u.raises_at("s:setopt: bad argument #3 'value' (socket option ip_add_membership takes a string",
		d.setopt, d, 'ip_add_membership', 1)
	-- A value of the right type that the core refuses is a bad value too.
	u.raises_at("s:setopt: bad argument #3 'value' (socket option so_rcvbuf: 1099511627776 is out of range)",
		s.setopt, s, 'so_rcvbuf', 2^40)
	u.raises_at("s:setopt: bad argument #3 'value' (socket option so_sndtimeo: -1 s is negative)",
		s.setopt, s, 'so_sndtimeo', -1)
	u.raises_at([[s:setopt: bad argument #3 'value' (socket option ip_multicast_if: "lo" is not an IPv4 address]],
		d.setopt, d, 'ip_multicast_if', 'lo')
	-- Seconds take a whole number too; a flag takes a number (non-zero is true).
	t.eq(s:setopt('so_sndtimeo', 2), true)
	t.eq(s:getopt'so_sndtimeo', 2)
	t.eq(s:setopt('tcp_nodelay', 3), true)
	t.eq(s:getopt'tcp_nodelay', true)
	t.eq(s:setopt('so_linger', 0.5), true, 'a fraction rounds up')
	t.eq(s:getopt'so_linger', 1)
	s:close(); d:close()
end)

t.test('a NaN expires, sleep or sleep_until raises', function()
	local s = assert(sock.tcp())
	local d = assert(sock.udp())
	local nan = 0/0
	u.raises_at("s:recv: bad argument #4 'expires' (NaN)", s.recv, s, ffi.new'char[1]', 1, nan)
	u.raises_at("tcp:accept: bad argument #2 'expires' (NaN)", s.accept, s, nan)
	u.raises_at("udp:recvnext: bad argument #4 'expires' (NaN)", d.recvnext, d, ffi.new'char[1]', 1, nan)
	u.raises_at("sock.sleep: bad argument #1 's' (NaN)", sock.sleep, nan)
	u.raises_at("sock.sleep_until: bad argument #1 't' (NaN)", sock.sleep_until, nan)
	s:close(); d:close()
end)

t.test('send/recv flags: nil or 0 only', function()
	local s = assert(sock.tcp())
	u.raises_at("s:send: bad argument #5 'flags'", s.send, s, 'x', 1, nil, 1)
	u.raises_at("s:recv: bad argument #5 'flags'", s.recv, s, ffi.new'char[1]', 1, nil, 4)
	s:close()
end)

t.test('len larger than the cdata buffer (or the string) raises', function()
	local s = assert(sock.tcp())
	local d = assert(sock.udp())
	local b = ffi.new'uint8_t[4]'
	local vla = ffi.new('uint8_t[?]', 3)
	local st = ffi.new'struct { int a; int b; }'
	u.raises_at("s:recv: bad argument #3 'len' (5 exceeds the buffer size 4)", s.recv, s, b, 5)
	u.raises_at("s:recv: bad argument #3 'len' (4 exceeds the buffer size 3)", s.recv, s, vla, 4)
	u.raises_at("s:recv: bad argument #3 'len' (9 exceeds the buffer size 8)", s.recv, s, st, 9)
	u.raises_at("s:send: bad argument #3 'len' (5 exceeds the buffer size 4)", s.send, s, b, 5)
	u.raises_at("s:send: bad argument #3 'len' (length exceeds the string)", s.send, s, 'abc', 4)
	u.raises_at("tcp:sendall: bad argument #3 'len'", s.sendall, s, b, 5)
	u.raises_at("tcp:recvall: bad argument #3 'len'", s.recvall, s, b, 5)
	u.raises_at("udp:sendto: bad argument #5 'len'", d.sendto, d, '127.0.0.1', 1, b, 5)
	u.raises_at("udp:recvnext: bad argument #3 'len'", d.recvnext, d, b, 5)
	s:close(); d:close()
end)

t.test('pointer cdata needs an explicit len; a NULL pointer raises', function()
	local s = assert(sock.tcp())
	local d = assert(sock.udp())
	local p = ffi.cast('uint8_t*', ffi.new'uint8_t[4]')
	local msg = 'a length is required with pointer cdata'
	u.raises_at("s:send: bad argument #3 'len' (" .. msg, s.send, s, p)
	u.raises_at("s:recv: bad argument #3 'len'", s.recv, s, p)
	u.raises_at("tcp:sendall: bad argument #3 'len' (" .. msg, s.sendall, s, p)
	u.raises_at("tcp:recvall: bad argument #3 'len'", s.recvall, s, p)
	u.raises_at("udp:sendto: bad argument #5 'len' (" .. msg, d.sendto, d, '127.0.0.1', 1, p)
	u.raises_at("udp:recvnext: bad argument #3 'len'", d.recvnext, d, p)
	local null = ffi.cast('char*', nil)
	u.raises_at("s:recv: bad argument #2 'buf' (NULL pointer)", s.recv, s, null, 4)
	u.raises_at("s:send: bad argument #2 'buf' (NULL pointer)", s.send, s, null, 4)
	s:close(); d:close()
end)

t.test("a closed socket used again: nil, 'closed'; close again is a no-op", function()
	local s = assert(sock.tcp())
	local d = assert(sock.udp())
	t.eq(s:closed(), false)
	t.eq(s:close(), true)
	t.eq(s:closed(), true)
	t.eq(s:close(), true, 'a second close is a no-op')
	d:close()
	-- every later call answers nil, 'closed', 0, msg: the seed's "closed"
	-- (a socket closed by another thread gives the same), it does not raise
	local b = ffi.new'char[4]'
	local calls = {
		{s.bind, s, '127.0.0.1', 0}, {s.setopt, s, 'so_reuseaddr', true},
		{s.getopt, s, 'so_type'}, {s.connect, s, '127.0.0.1', 1}, {s.send, s, 'x'},
		{s.recv, s, b, 4}, {s.listen, s, '127.0.0.1', 0}, {s.accept, s},
		{s.sendall, s, 'x'}, {s.recvall, s, b, 4}, {s.shutdown, s, 'w'},
		{s.getsockname, s}, {s.getpeername, s}, {d.connect, d, '127.0.0.1', 1},
		{d.sendto, d, '127.0.0.1', 1, 'x'}, {d.recvnext, d, b, 4}, {d.send, d, 'x'},
	}
	for i, c in ipairs(calls) do
		local r = {c[1](unpack(c, 2))}
		t.eq(r[1], nil, 'call ' .. i); t.eq(r[2], 'closed', 'call ' .. i)
		t.eq(r[3], 0, 'call ' .. i); t.eq(type(r[4]), 'string', 'call ' .. i)
	end
	-- a programmer error still raises, closed or not
	u.raises_at("s:send: bad argument #2 'buf'", s.send, s, {})
	-- what describes the socket still works
	t.eq(s:type(), 'tcp'); t.eq(s:family(), 'inet'); t.eq(s:protocol(), 'tcp')
	t.eq(d:type(), 'udp')
end)

t.test("a socket closed by another thread: nil, 'closed' from every later call, no raise", function()
	local res = {}
	u.run(function()
		local c, a = u.pair()
		local buf = ffi.new'char[4]'
		sock.newthread(function()
			res.parked = {a:recv(buf, 4, u.exp(2))} -- parked when the close comes
			res.after = {a:recv(buf, 4, u.exp(2))}
			res.send = {a:send('x')}
			res.opt = {a:getopt('so_type')}
		end)
		sock.sleep(0.01)
		a:close()
		c:close()
	end)
	for _, k in ipairs{'parked', 'after', 'send', 'opt'} do
		t.eq(res[k][1], nil, k); t.eq(res[k][2], 'closed', k)
	end
end)

t.test('argument errors point at the caller, not inside the library', function()
	local s = assert(sock.tcp())
	local ok, e = pcall(function() return s:send({}) end)
	t.eq(ok, false)
	t.ok(not tostring(e):find('sock/sock.lua', 1, true), 'no library position: ' .. tostring(e))
	s:close()
end)

---------------------------------------------------------------- nil, err, code, msg

local function failure(r, err, code, msg)
	t.eq(r, nil, 'failed')
	t.eq(type(err), 'string')
	t.eq(type(code), 'number')
	t.eq(type(msg), 'string')
	return err, code, msg
end

t.test("connect to a closed port: nil, 'connection_refused', ECONNREFUSED, msg", function()
	local port = u.free_port()
	local res
	u.run(function()
		local c = assert(sock.tcp())
		res = {c:connect('127.0.0.1', port, u.exp())}
		c:close()
	end)
	local err, code = failure(unpack(res, 1, 4))
	t.eq(err, 'connection_refused')
	t.eq(code, 111)
end)

t.test("bind to a used port: nil, 'address_already_in_use', EADDRINUSE", function()
	local srv, port = u.listener()
	local s2 = assert(sock.tcp())
	local err, code = failure(s2:bind('127.0.0.1', port))
	t.eq(err, 'address_already_in_use'); t.eq(code, 98)
	err = failure(s2:listen('127.0.0.1', port))
	t.eq(err, 'address_already_in_use')
	local d1, dport = u.udp()
	local d2 = assert(sock.udp())
	err = failure(d2:bind('127.0.0.1', dport))
	t.eq(err, 'address_already_in_use', 'udp too')
	srv:close(); s2:close(); d1:close(); d2:close()
end)

t.test('I/O on an unconnected tcp socket: not_connected, broken_pipe, invalid_argument', function()
	local res = {}
	u.run(function()
		local s = assert(sock.tcp())
		local b = ffi.new'char[1]'
		res.recv = {s:recv(b, 1, exp(1))}
		res.recvall = {s:recvall(b, 1, exp(1))}
		res.send = {s:send('x', nil, exp(1))}
		res.sendall = {s:sendall('x', nil, exp(1))}
		res.accept = {s:accept(exp(1))}
		res.peer = {s:getpeername()}
		s:close()
	end)
	t.eq(res.recv[2], 'not_connected'); t.eq(res.recv[3], 107)
	t.eq(res.recvall[2], 'not_connected'); t.eq(res.recvall[5], 0)
	t.eq(res.send[2], 'broken_pipe'); t.eq(res.send[3], 32)
	t.eq(res.sendall[2], 'broken_pipe'); t.eq(res.sendall[5], 0)
	t.eq(res.accept[2], 'invalid_argument', 'accept on a socket that does not listen')
	t.eq(res.peer[2], 'not_connected')
end)

t.test("a wait past its expires: nil, 'timeout', 0, msg", function()
	local res
	local srv = u.listener()
	u.run(function()
		res = {srv:accept(sock.clock() + 0.02)}
	end)
	local err, code = failure(unpack(res, 1, 4))
	t.eq(err, 'timeout'); t.eq(code, 0)
	srv:close()
end)

t.test("I/O outside a thread that would block: nil, 'not_in_thread'", function()
	local srv, port = u.listener()
	local err = failure(srv:accept(u.exp(1)))
	t.eq(err, 'not_in_thread')
	local d = u.udp()
	err = failure(d:recvnext(ffi.new'char[8]', 8, u.exp(1)))
	t.eq(err, 'not_in_thread')
	-- a connect that does not complete at once
	local c = assert(sock.tcp())
	err = failure(c:connect('127.0.0.1', port, u.exp(1)))
	t.eq(err, 'not_in_thread')
	-- what does not block works outside threads
	local c2, a2 = nil, nil
	local srv2, port2 = u.listener()
	u.run(function()
		c2 = assert(sock.tcp())
		assert(c2:connect('127.0.0.1', port2, u.exp()))
		a2 = assert(srv2:accept(u.exp()))
	end)
	t.eq(c2:send('hey'), 3, 'send with room in the buffer')
	local b = ffi.new'char[8]'
	local n
	for _ = 1, 100 do -- the bytes may take a moment to arrive
		n, err = a2:recv(b, 8)
		if n then break end
		t.eq(err, 'not_in_thread')
	end
	t.eq(n, 3, 'recv with data ready')
	err = failure(a2:recv(b, 8))
	t.eq(err, 'not_in_thread', 'and nothing left')
	c:close(); c2:close(); a2:close(); srv:close(); srv2:close(); d:close()
end)

t.test("a second concurrent reader: nil, 'busy'; the first one is undisturbed", function()
	local res = {}
	local srv, port = u.listener()
	u.run(function()
		local c = assert(sock.tcp())
		assert(c:connect('127.0.0.1', port, u.exp()))
		local a = assert(srv:accept(u.exp()))
		sock.newthread(function()
			local b = ffi.new'char[8]'
			res.first = {c:recv(b, 8, u.exp())}
			res.data = ffi.string(b, 2)
		end)
		sock.newthread(function()
			res.second = {c:recv(ffi.new'char[8]', 8, u.exp())}
		end)
		sock.sleep(0.02)
		assert(a:send('ok'))
		sock.sleep(0.02)
		c:close(); a:close()
	end)
	local err = failure(unpack(res.second, 1, 4))
	t.eq(err, 'busy')
	t.eq(res.first[1], 2)
	t.eq(res.data, 'ok')
	srv:close()
end)

t.test("a second concurrent writer waits its turn (not 'busy'): the first one's timeout closes the socket", function()
	local res = {}
	u.run(function()
		local c, a = u.pair()
		-- More than loopback's buffers take (about 4 MiB): the last attempt,
		-- at the deadline, cannot finish it either.
		local big = ffi.new('char[?]', 64 * 1024 * 1024)
		sock.newthread(function()
			res.first = {c:sendall(big, nil, u.exp(0.3))}
		end)
		sock.newthread(function()
			res.second = {c:send('x', nil, u.exp(1))}
		end)
		sock.sleep(0.4)
		c:close(); a:close()
	end)
	t.eq(res.first[2], 'timeout', 'the first writer waited (nobody reads)')
	t.eq(res.second[2], 'closed', 'the second one queued, until the close')
end)

t.test("close wakes a thread blocked in recv, accept or send with nil, 'closed'", function()
	local res = {}
	u.run(function()
		local c, a = u.pair()
		local srv = u.listener()
		local w, wa = u.pair()
		local t0 = sock.clock()
		sock.newthread(function() res.recv = {c:recv(ffi.new'char[4]', 4, u.exp(3))} end)
		sock.newthread(function() res.accept = {srv:accept(u.exp(3))} end)
		sock.newthread(function()
			res.send = {w:sendall(ffi.new('char[?]', 16 * 1024 * 1024), nil, u.exp(3))}
		end)
		sock.sleep(0.05)
		c:close(); srv:close(); w:close()
		sock.sleep(0.01)
		res.dt = sock.clock() - t0
		a:close(); wa:close()
	end)
	t.eq(res.recv[1], nil); t.eq(res.recv[2], 'closed')
	t.eq(res.accept[1], nil); t.eq(res.accept[2], 'closed')
	t.eq(res.send[1], nil); t.eq(res.send[2], 'closed')
	t.eq(type(res.send[5]), 'number', 'sendall reports the bytes sent')
	t.ok(res.dt < 1, 'woken at once, not at the deadline')
end)

t.test('the end of stream in recvall carries the bytes done; a cut datagram is len, sa, truncated', function()
	local res = {}
	u.run(function()
		local c, a = u.pair()
		assert(a:send('abc'))
		a:close()
		local b = ffi.new'char[10]'
		res.eof = {c:recvall(b, 10, u.exp())}
		res.eofdata = ffi.string(b, 3)
		c:close()
		local d1, p1 = u.udp()
		local d2 = u.udp()
		assert(d2:sendto('127.0.0.1', p1, 'hello world'))
		res.big = {d1:recvnext(b, 5, u.exp())}
		res.bigdata = ffi.string(b, 5)
		d1:close(); d2:close()
	end)
	t.eq(res.eof[1], nil); t.eq(res.eof[2], 'closed'); t.eq(res.eof[5], 3)
	t.eq(res.eofdata, 'abc')
	-- recvnext keeps what fits and says the datagram was cut
	t.eq(res.big[1], 5); t.eq(res.big[3], 'truncated')
	t.eq(res.bigdata, 'hello')
end)
