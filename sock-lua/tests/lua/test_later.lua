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

-- suspend, resume, transfer -----------------------------------------------------

t.test('two threads ping-pong through suspend/resume, values both ways', function()
	local log = {}
	local ponger = sock.newthread(function()
		local x = sock.suspend('ready')
		while x do
			log[#log + 1] = 'pong' .. x
			x = sock.suspend(x * 2) -- goes back as the resume's result
		end
		log[#log + 1] = 'end'
	end)
	u.run(function()
		for i = 1, 1000 do
			log[#log + 1] = 'ping' .. i
			local r = sock.resume(ponger, i) -- runs it now, until it suspends
			assert(r == i * 2, 'resume returns what suspend passed')
			assert(log[#log] == 'pong' .. i)
			if i % 100 == 0 then sock.sleep(0) end -- and blocks in between
		end
		t.eq(select('#', sock.resume(ponger, nil)), 0, 'it ended: nothing')
	end)
	t.eq(#log, 2001)
	t.eq(log[1], 'ping1'); t.eq(log[2], 'pong1'); t.eq(log[2000], 'pong1000')
	t.eq(log[2001], 'end')
end)

t.test('resume of a thread parked in I/O, a sleep, or finished raises; so does a bad co', function()
	u.reset()
	local srv = u.listener()
	local in_io = sock.newthread(function() srv:accept(u.exp(5)) end)
	local asleep = sock.newthread(function() sock.sleep(0.05) end)
	local done = sock.newthread(function() end)
	u.raises_at('sock.resume: the thread is not suspended', sock.resume, in_io)
	u.raises_at('sock.resume: the thread is not suspended', sock.resume, asleep)
	u.raises_at('sock.resume: the thread has finished', sock.resume, done)
	u.raises_at("sock.resume: bad argument #1 'co'", sock.resume, 'co')
	u.raises_at("sock.transfer: bad argument #1 'co'", sock.transfer, 42)
	local own
	sock.newthread(function()
		own = select(2, pcall(sock.resume, coroutine.running()))
	end)
	t.ok(tostring(own):find('sock.resume: the thread is running', 1, true), tostring(own))
	-- The refused threads go on as they were.
	srv:close() -- wakes the accept with 'closed'
	u.loop(); u.check()
	-- suspend outside threads: not_in_thread, as every blocking call
	local r, err = sock.suspend()
	t.eq(r, nil); t.eq(err, 'not_in_thread')
end)

t.test('resume from outside the threads runs the thread until it blocks', function()
	local log = {}
	local co = sock.newthread(function()
		log[#log + 1] = 'start'
		local a, b = sock.suspend()
		log[#log + 1] = a .. b
		sock.sleep(0.01)
		log[#log + 1] = 'slept'
	end)
	t.eq(table.concat(log, ','), 'start')
	t.eq(select('#', sock.resume(co, 'x', 'y')), 0, 'it blocked on a sleep: nothing')
	t.eq(table.concat(log, ','), 'start,xy')
	u.loop(); u.check()
	t.eq(table.concat(log, ','), 'start,xy,slept')
end)

t.test('transfer hands control to a suspended thread, which transfers back', function()
	local log = {}
	local a
	local b = sock.newthread(function()
		local x = sock.suspend()
		for i = 1, 3 do
			log[#log + 1] = 'b' .. x
			x = sock.transfer(a, x + 1) -- park b, run a
		end
	end)
	sock.newthread(function()
		a = sock.currentthread() -- (newthread has not returned yet)
		local x = 0
		for i = 1, 3 do
			log[#log + 1] = 'a' .. x
			x = sock.transfer(b, x + 1)
		end
		log[#log + 1] = 'a' .. x
		sock.resume(b) -- b's last transfer: it ends
	end)
	u.loop(); u.check()
	t.eq(table.concat(log, ','), 'a0,b1,a2,b3,a4,b5,a6')
	-- a has finished: not a thread to transfer to
	local ok, e = pcall(sock.run, function() sock.transfer(a) end)
	t.eq(ok, false)
	t.ok(tostring(e):find('sock.transfer: the thread is not suspended', 1, true), tostring(e))
end)

-- sleep jobs ---------------------------------------------------------------------

t.test('a sleep_job woken early returns the wakeup values; one that runs its course, nothing', function()
	local sj = sock.sleep_job()
	local res = {}
	t.eq(sj:wakeup(), false, 'nobody sleeps')
	u.run(function()
		local t0 = sock.clock()
		res.woken = {n = 0}
		res.woken = {sj:sleep(3600)}
		res.woken_after = sock.clock() - t0
		t0 = sock.clock()
		res.course = {n = select('#', sj:sleep(0.05))}
		res.course_took = sock.clock() - t0
		res.until_ = {n = select('#', sj:sleep_until(sock.clock() + 0.01))}
	end, function()
		sock.sleep(0.02)
		res.second = {pcall(sj.sleep, sj, 1)} -- another thread on the same job
		res.wakeup = sj:wakeup('early', 42)
		res.again = sj:wakeup()
	end)
	t.eq(res.wakeup, true); t.eq(res.again, false)
	t.eq(res.woken[1], 'early'); t.eq(res.woken[2], 42)
	t.ok(res.woken_after < 5, 'woken early')
	t.eq(res.course.n, 0); t.ok(res.course_took >= 0.05, 'ran its course')
	t.eq(res.until_.n, 0)
	t.eq(res.second[1], false)
	t.ok(tostring(res.second[2]):find('another thread sleeps on this job', 1, true), tostring(res.second[2]))
	u.raises_at("sj:sleep: bad argument #2 's'", sj.sleep, sj, 'x')
	u.raises_at("sj:wakeup: bad argument #1 'self'", sj.wakeup, {})
	local r, err = sj:sleep(0.01)
	t.eq(r, nil); t.eq(err, 'not_in_thread')
end)

-- timers -------------------------------------------------------------------------

t.test('runat / runafter run f in new threads in time order; cancel before', function()
	local log = {}
	u.reset()
	local t0 = sock.clock()
	sock.runafter(0.03, function() log[#log + 1] = 'c'; sock.sleep(0.001); log[#log + 1] = 'c2' end)
	sock.runat(t0 + 0.01, function()
		log[#log + 1] = 'a'
		log.in_thread = sock.currentthread() ~= nil
	end)
	local b = sock.runafter(0.02, function() log[#log + 1] = 'b' end)
	local x = sock.runafter(0.015, function() log[#log + 1] = 'never' end)
	t.eq(x:pending(), true)
	t.eq(x:cancel(), true); t.eq(x:cancel(), false); t.eq(x:pending(), false)
	u.loop(); u.check() -- the timers alone keep the loop going
	t.eq(table.concat(log, ','), 'a,b,c,c2')
	t.eq(log.in_thread, true)
	t.ok(sock.clock() - t0 >= 0.03)
	t.eq(b:pending(), false); t.eq(b:cancel(), false)
	u.raises_at("sock.runat: bad argument #1 't'", sock.runat, 'x', print)
	u.raises_at("sock.runafter: bad argument #2 'f'", sock.runafter, 1, 'f')
	u.raises_at("sock.runevery: bad argument #1 's'", sock.runevery, 0, print)
end)

t.test('10,000 pending runafter timers: all run in order, the cancelled ones never', function()
	local fired = {}
	u.reset()
	local t0 = sock.clock()
	local tms = {}
	for i = 1, 10000 do
		local at = t0 + 0.05 + ((i * 7919) % 10000) * 0.00002
		tms[i] = sock.runat(at, function() fired[#fired + 1] = at; fired[at] = i end)
	end
	for i = 2, 10000, 2 do assert(tms[i]:cancel()) end
	local before = collectgarbage'count'
	u.loop(10); u.check()
	t.eq(#fired, 5000)
	local ordered = true
	for i = 2, #fired do if fired[i] < fired[i - 1] then ordered = false end end
	t.ok(ordered, 'in time order')
	local odd = true
	for _, at in ipairs(fired) do if fired[at] % 2 == 0 then odd = false end end
	t.ok(odd, 'the cancelled ones never ran')
	t.ok(before > 0)
end)

t.test('runevery: cancelled from another thread, and stopped by f returning false', function()
	u.reset()
	local n, ticks = 0, {}
	local stops = sock.runevery(0.005, function()
		n = n + 1
		if n == 5 then return false end
	end)
	local t0 = sock.clock()
	local every = sock.runevery(0.01, function() ticks[#ticks + 1] = sock.clock() end)
	local after_cancel
	sock.newthread(function()
		sock.sleep(0.105)
		t.eq(every:cancel(), true)
		local k = #ticks
		sock.sleep(0.05)
		after_cancel = #ticks - k
	end)
	u.loop(); u.check()
	t.eq(n, 5, 'stopped by returning false')
	t.eq(stops:pending(), false)
	t.eq(after_cancel, 0, 'no run after the cancel')
	t.ok(#ticks >= 5 and #ticks <= 11, #ticks .. ' ticks')
	local on_time = true
	for k = 1, #ticks do if ticks[k] < t0 + 0.01 * k then on_time = false end end
	t.ok(on_time, 'every 0.01 s from the start, never early')
	-- runs never overlap: a run longer than the interval delays the next
	local running, overlap, runs = false, false, 0
	sock.runevery(0.001, function()
		if running then overlap = true end
		running = true
		sock.sleep(0.01)
		running = false
		runs = runs + 1
		return runs < 3
	end)
	u.loop(); u.check()
	t.eq(runs, 3); t.eq(overlap, false)
	-- cancel from inside its own run
	local k, self_tm = 0, nil
	self_tm = sock.runevery(0.002, function()
		k = k + 1
		if k == 2 then t.eq(self_tm:cancel(), true) end
	end)
	u.loop(); u.check()
	t.eq(k, 2); t.eq(self_tm:pending(), false)
end)

t.test('start([timeout]): true when all is done, false, timeout when time runs out', function()
	u.reset()
	local co = sock.newthread(function() sock.suspend() end) -- parked for good
	local t0 = sock.clock()
	local ok, err = sock.start(0.05)
	t.eq(ok, false); t.eq(err, 'timeout')
	t.ok(sock.clock() - t0 >= 0.05)
	sock.resume(co) -- it ends
	sock.newthread(function() sock.sleep(0.01) end)
	t0 = sock.clock()
	t.eq(sock.start(5), true)
	t.ok(sock.clock() - t0 < 4)
	u.raises_at("sock.start: bad argument #1 'timeout'", sock.start, 'x')
	u.check()
end)

-- recvall() and recvall_read -------------------------------------------------------

t.test('tcp:recvall() reads to the end of a 1 MiB stream into a buffer it grows', function()
	local size = 1024 * 1024 + 17
	local data = u.pattern(size, 7)
	local res = {}
	u.run(function()
		local c, srv = u.pair()
		sock.newthread(function()
			assert(c:sendall(data, size, u.exp(5)))
			c:close()
		end)
		res.buf, res.len = srv:recvall(u.exp(5))
		srv:close()
	end)
	t.eq(res.len, size)
	t.eq(type(res.buf), 'cdata')
	t.ok(u.same(res.buf, data, size), 'the bytes as sent')
end)

t.test('tcp:recvall() error before the close: nil, err, buf, len with what was read', function()
	local res = {}
	u.run(function()
		local c, srv = u.pair()
		assert(c:send('partial'))
		res = {srv:recvall(sock.clock() + 0.05)} -- the peer never closes
		c:close()
	end)
	t.eq(res[1], nil); t.eq(res[2], 'timeout')
	t.eq(res[4], 7); t.eq(ffi.string(res[3], res[4]), 'partial')
end)

t.test('tcp:recvall_read gives a plain reader over everything the peer sent', function()
	local got = {}
	u.run(function()
		local c, srv = u.pair()
		sock.newthread(function()
			assert(c:sendall('hello, reader', nil, u.exp()))
			c:close()
		end)
		local read = assert(srv:recvall_read(u.exp()))
		local b = ffi.new'char[5]'
		while true do
			local n = read(b, 5)
			if n == 0 then break end
			got[#got + 1] = ffi.string(b, n)
		end
		got.after = read(b, 5)
		srv:close()
	end)
	t.eq(table.concat(got, '|'), 'hello|, rea|der')
	t.eq(got.after, 0)
end)
