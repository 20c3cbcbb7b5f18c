-- What the original's code and later versions added to the seed
-- (sock-later-api.md), where the seed's semantics allow: sock.thread,
-- cosafewrap, run, onthreadfinish, threadenv, tcp:recvn, the class tables and
-- the is*socket fields.

local t = require'tap'
local ffi = require'ffi'
local sock = require'sock'
local u = require'util'

local exp = u.exp

t.test('sock.thread starts at once, like newthread, with arguments', function()
	local got = {}
	u.reset()
	local co = sock.thread(function(a, b) got[1] = a + b; sock.sleep(0.01); got[2] = 'after' end, 1, 2)
	t.eq(type(co), 'thread')
	t.eq(got[1], 3, 'ran until its first wait')
	t.eq(got[2], nil)
	u.loop(); u.check()
	t.eq(got[2], 'after')
	u.raises_at("sock.thread: bad argument #1 'func'", sock.thread, 42)
end)

t.test('sock.cosafewrap is cowrap: I/O between the yields', function()
	t.eq(sock.cosafewrap, sock.cowrap)
	local got = {}
	u.run(function()
		local gen = sock.cosafewrap(function()
			for i = 1, 3 do sock.sleep(0.001); coroutine.yield(i) end
		end)
		for i in gen do got[#got + 1] = i end
	end)
	t.eq(table.concat(got, ','), '1,2,3')
end)

t.test('sock.yield: from a cowrap iterator to its consumer, I/O in between', function()
	local got = {}
	u.run(function()
		local gen = sock.cowrap(function()
			for i = 1, 3 do sock.sleep(0.001); sock.yield(i, i * 10) end
		end)
		for a, b in gen do got[#got + 1] = a .. ':' .. b end
	end)
	t.eq(table.concat(got, ','), '1:10,2:20,3:30')
end)

t.test('sock.run: the results of f in a thread, the loop driven; errors raised again', function()
	local a, b = sock.run(function(x)
		sock.sleep(0.01)
		return x * 2, 'done'
	end, 21)
	t.eq(a, 42); t.eq(b, 'done')
	local ok, e = pcall(sock.run, function() sock.sleep(0.001); error('boom', 0) end)
	t.eq(ok, false); t.eq(e, 'boom')
	-- inside a thread: just a call
	local inside
	u.run(function() inside = {sock.run(function() return sock.currentthread() ~= nil end)} end)
	t.eq(inside[1], true)
	-- a socket round trip
	local n = sock.run(function()
		local c, srv = u.pair()
		assert(c:send('ping'))
		local buf = ffi.new'char[4]'
		assert(srv:recvall(buf, 4, exp()))
		c:close(); srv:close()
		return ffi.string(buf, 4)
	end)
	t.eq(n, 'ping')
end)

t.test('sock.onthreadfinish: called when the thread ends, however it ends, in order', function()
	local log = {}
	u.reset()
	local co1 = sock.newthread(function() sock.sleep(0.01) end)
	sock.onthreadfinish(co1, function(co) log[#log + 1] = 'a' .. tostring(co == co1) end)
	sock.onthreadfinish(co1, function() log[#log + 1] = 'b' end)
	local errs = {}
	sock.onerror(function(err) errs[#errs + 1] = tostring(err) end)
	local co2 = sock.newthread(function() sock.sleep(0.005); error('failed on purpose') end)
	sock.onthreadfinish(co2, function() log[#log + 1] = 'c' end)
	u.loop()
	u.record_errors()
	t.eq(table.concat(log, ','), 'c,atrue,b')
	t.eq(#errs, 1)
	u.raises_at("sock.onthreadfinish: bad argument #2 'f'", sock.onthreadfinish, co1, 1)
end)

t.test('sock.threadenv: a weak table, thread -> value', function()
	local seen
	u.run(function()
		local co = sock.currentthread()
		sock.threadenv[co] = {request = 7}
		sock.sleep(0.001)
		seen = sock.threadenv[sock.currentthread()].request
	end)
	t.eq(seen, 7)
	t.eq(getmetatable(sock.threadenv).__mode, 'k')
end)

t.test('tcp:recvn: exactly len bytes -> buf, len; a short read: nil, err, got', function()
	local res = {}
	u.run(function()
		local c, a = u.pair()
		assert(c:send('abcdef'))
		local buf = ffi.new'char[4]'
		res.full = {a:recvn(buf, 4, exp())}
		res.data = ffi.string(buf, 4)
		c:close()
		res.short = {a:recvn(buf, 4, exp())}
		a:close()
	end)
	t.ok(res.full[1] ~= nil); t.eq(res.full[2], 4); t.eq(res.data, 'abcd')
	t.eq(res.short[1], nil); t.eq(res.short[2], 'closed'); t.eq(res.short[3], 2)
end)

t.test('class tables add methods to every socket of a kind; is*socket fields', function()
	function sock.tcp_class:hello() return 'hello from ' .. self:type() end
	local s = assert(sock.tcp())
	t.eq(s:hello(), 'hello from tcp')
	sock.tcp_class.hello = nil
	local d, r = assert(sock.udp()), nil
	t.eq(s.issocket, true); t.eq(s.istcpsocket, true); t.eq(s.isudpsocket, nil)
	t.eq(d.issocket, true); t.eq(d.isudpsocket, true); t.eq(d.istcpsocket, nil)
	t.eq(sock.raw_class.israwsocket, true); t.eq(sock.raw_class.isudpsocket, false)
	t.eq(sock.udp_class.israwsocket, nil)
	-- sockets are tables: a program's own fields and wrapped methods
	s.name = 'mine'
	local close = s.close
	local closed_by_wrapper = false
	s.close = function(self) closed_by_wrapper = true; return close(self) end
	s:close()
	t.eq(s.name, 'mine'); t.eq(closed_by_wrapper, true); t.eq(s:closed(), true)
	d:close()
end)
