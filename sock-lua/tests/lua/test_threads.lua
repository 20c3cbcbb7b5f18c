-- Threads and the loop: sock.newthread, currentthread, poll, start, stop,
-- sleep, sleep_until, clock, epoll_fd, iocp (every scheduling row of the seed's
-- API table and the sentences about them).

local t = require'tap'
local sock = require'sock'
local u = require'util'

---------------------------------------------------------------- newthread

t.test('newthread returns a coroutine', function()
	local co = sock.newthread(function() end)
	t.eq(type(co), 'thread')
	t.eq(coroutine.status(co), 'dead', 'a thread without I/O finished at once')
	u.loop(1)
end)

t.test('newthread runs at once until the first blocking call, then returns', function()
	local log = {}
	local co = sock.newthread(function()
		log[#log + 1] = 'thread: start'
		sock.sleep(0.01)
		log[#log + 1] = 'thread: after sleep'
	end)
	log[#log + 1] = 'caller: newthread returned'
	t.eq(coroutine.status(co), 'suspended')
	t.eq(#log, 2)
	t.eq(log[1], 'thread: start')
	t.eq(log[2], 'caller: newthread returned')
	u.loop(2)
	t.eq(log[3], 'thread: after sleep')
	t.eq(coroutine.status(co), 'dead')
end)

t.test('newthread passes its extra arguments to the function', function()
	local got
	sock.newthread(function(a, b, c) got = {a, b, c} end, 1, 'two', nil)
	t.eq(got[1], 1); t.eq(got[2], 'two'); t.eq(got[3], nil)
	u.loop(1)
end)

t.test('newthread inside a thread: the child runs at once, then the parent goes on', function()
	local log = {}
	u.run(function()
		log[#log + 1] = 'parent 1'
		sock.newthread(function()
			log[#log + 1] = 'child 1'
			sock.sleep(0.01)
			log[#log + 1] = 'child 2'
		end)
		log[#log + 1] = 'parent 2'
		sock.sleep(0.05)
		log[#log + 1] = 'parent 3'
	end)
	t.eq(table.concat(log, ','), 'parent 1,child 1,parent 2,child 2,parent 3')
end)

t.test('threads interleave at their blocking calls', function()
	local log = {}
	local function worker(name, d)
		return function()
			for i = 1, 3 do
				log[#log + 1] = name .. i
				sock.sleep(d)
			end
		end
	end
	u.run(worker('a', 0.02), worker('b', 0.03))
	-- a1 b1 (at 0) a2 (20ms) b2 (30ms) a3 (40ms) b3 (60ms)
	t.eq(table.concat(log, ' '), 'a1 b1 a2 b2 a3 b3')
end)

t.test('a finished thread hands control back to the loop', function()
	local done = 0
	for i = 1, 10 do
		sock.newthread(function() sock.sleep(0.001 * i); done = done + 1 end)
	end
	u.loop(2)
	t.eq(done, 10)
end)

---------------------------------------------------------------- currentthread

t.test('currentthread: nil outside threads, the thread inside', function()
	t.eq(sock.currentthread(), nil)
	local seen = {}
	local co
	co = sock.newthread(function()
		seen[1] = sock.currentthread()
		sock.sleep(0.001)
		seen[2] = sock.currentthread()
		seen[3] = coroutine.running()
	end)
	u.loop(1)
	t.eq(seen[1], co)
	t.eq(seen[2], co, 'the same after a suspension')
	t.eq(seen[3], co)
	t.eq(sock.currentthread(), nil)
end)

t.test('currentthread: nil in a plain coroutine outside sock threads', function()
	local got = 'unset'
	local co = coroutine.create(function() got = sock.currentthread() end)
	assert(coroutine.resume(co))
	t.eq(got, nil)
end)

---------------------------------------------------------------- poll

t.test("poll on an empty loop: false, 'empty' at once", function()
	local t0 = sock.clock()
	local ok, err = sock.poll()
	t.eq(ok, false); t.eq(err, 'empty')
	t.eq(select('#', sock.poll(0)), 2)
	ok, err = sock.poll(10)
	t.eq(ok, false); t.eq(err, 'empty')
	t.ok(sock.clock() - t0 < 0.1, 'does not wait')
end)

t.test("poll: true when it resumed a thread, false, 'timeout' when not", function()
	local woke = false
	sock.newthread(function() sock.sleep(0.3); woke = true end)
	local t0 = sock.clock()
	local ok, err = sock.poll(0.05)
	local dt = sock.clock() - t0
	t.eq(ok, false); t.eq(err, 'timeout')
	t.ok(dt >= 0.05 - 1e-3, 'waited the timeout, not less: ' .. dt)
	t.ok(dt < 0.25, 'not much more: ' .. dt)
	t.eq(woke, false)
	ok, err = sock.poll(2)
	t.eq(ok, true); t.eq(err, nil)
	t.eq(woke, true)
	t.ok(sock.clock() - t0 >= 0.3 - 1e-3, 'the sleep was not cut short')
	t.eq(select(2, sock.poll(0)), 'empty')
end)

t.test('poll(0) does not block; huge and infinite timeouts are accepted', function()
	local woke = false
	sock.newthread(function() sock.sleep(0.05); woke = true end)
	local t0 = sock.clock()
	t.eq(sock.poll(0), false)
	t.ok(sock.clock() - t0 < 0.04)
	t.eq(sock.poll(2^31), true, '2^31 s is infinite: waits for the thread')
	t.eq(woke, true)
	sock.newthread(function() sock.sleep(0.01) end)
	t.eq(sock.poll(1/0), true)
	t.eq(select(2, sock.poll(1/0)), 'empty')
end)

t.test('poll and start inside a thread raise', function()
	local errs = {}
	u.run(function()
		errs[1] = select(2, pcall(sock.poll, 0))
		errs[2] = select(2, pcall(sock.start))
	end)
	t.has(tostring(errs[1]), 'sock.poll')
	t.has(tostring(errs[2]), 'sock.start')
end)

---------------------------------------------------------------- start, stop

t.test('start runs until every thread finished, and returns true', function()
	local n = 0
	for i = 1, 5 do
		sock.newthread(function() sock.sleep(0.01 * i); n = n + 1 end)
	end
	local t0 = sock.clock()
	t.eq(sock.start(), true)
	t.eq(n, 5)
	t.ok(sock.clock() - t0 >= 0.05 - 1e-3)
	t.eq(sock.start(), true, 'start on an empty loop returns at once')
end)

t.test('stop inside a thread makes start return; a later start resumes the rest', function()
	local log = {}
	sock.newthread(function()
		sock.sleep(0.01)
		log[#log + 1] = 'stopper'
		sock.stop()
	end)
	sock.newthread(function()
		sock.sleep(0.2)
		log[#log + 1] = 'sleeper'
	end)
	local t0 = sock.clock()
	t.eq(sock.start(), true)
	t.ok(sock.clock() - t0 < 0.15, 'start returned after stop, before the sleeper')
	t.eq(table.concat(log, ','), 'stopper')
	t.eq(sock.start(), true)
	t.eq(table.concat(log, ','), 'stopper,sleeper')
end)

---------------------------------------------------------------- sleep, clock

t.test('clock is a monotonic number of seconds', function()
	local a = sock.clock()
	t.eq(type(a), 'number')
	local b = sock.clock()
	t.ok(b >= a)
	local c
	u.run(function() sock.sleep(0.02); c = sock.clock() end)
	t.ok(c - a >= 0.02 - 1e-3)
end)

t.test("clock is the system's CLOCK_MONOTONIC (time.clock() of the original)", function()
	local ffi = require'ffi'
	pcall(ffi.cdef, 'struct sock_test_timespec { long tv_sec; long tv_nsec; };'
		.. 'int clock_gettime(int, struct sock_test_timespec *);')
	local ts = ffi.new'struct sock_test_timespec'
	local function mono()
		assert(ffi.C.clock_gettime(1, ts) == 0) -- CLOCK_MONOTONIC on Linux
		return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
	end
	local a = mono(); local c = sock.clock(); local b = mono()
	t.ok(a - 1e-3 <= c and c <= b + 1e-3, ('%f <= %f <= %f'):format(a, c, b))
	-- A duration passed by mistake as expires is long past: timeout at once.
	local res
	u.run(function()
		local x = assert(sock.udp())
		assert(x:bind('127.0.0.1', 0))
		res = {x:recv(ffi.new'char[1]', 1, 5)}
		x:close()
	end)
	t.eq(res[2], 'timeout')
end)

t.test('sleep: never early, not much late', function()
	local dts = {}
	u.run(function()
		for _, s in ipairs{0.01, 0.05, 0.1} do
			local t0 = sock.clock()
			local r = {sock.sleep(s)}
			t.eq(#r, 0, 'sleep returns nothing')
			dts[#dts + 1] = {s, sock.clock() - t0}
		end
	end)
	for _, d in ipairs(dts) do
		t.ok(d[2] >= d[1], ('sleep(%g) woke early: %g'):format(d[1], d[2]))
		t.ok(d[2] < d[1] + 0.05, ('sleep(%g) woke late: %g'):format(d[1], d[2]))
	end
end)

t.test('sleep_until: wakes at the clock value, not before', function()
	local target, woke
	u.run(function()
		target = sock.clock() + 0.05
		sock.sleep_until(target)
		woke = sock.clock()
	end)
	t.ok(woke >= target, 'not early')
	t.ok(woke < target + 0.05, 'not late')
end)

t.test('sleeps do not block the other threads', function()
	local dt = u.run(function() sock.sleep(0.1) end, function() sock.sleep(0.1) end,
		function() sock.sleep_until(sock.clock() + 0.1) end)
	t.ok(dt < 0.18, 'three 0.1 s sleeps run together: ' .. dt)
end)

t.test('sleep(0) and a past sleep_until yield once and return', function()
	local log = {}
	u.run(function()
		log[#log + 1] = 'a1'
		sock.sleep(0)
		log[#log + 1] = 'a2'
		sock.sleep_until(sock.clock() - 10)
		log[#log + 1] = 'a3'
	end, function()
		log[#log + 1] = 'b1'
		sock.sleep(0)
		log[#log + 1] = 'b2'
		sock.sleep(0)
		log[#log + 1] = 'b3'
	end)
	t.eq(#log, 6)
	t.eq(log[1], 'a1'); t.eq(log[2], 'b1')
end)

t.test("sleep outside a thread: nil, 'not_in_thread'", function()
	local r, err, code, msg = sock.sleep(0.01)
	t.eq(r, nil); t.eq(err, 'not_in_thread'); t.eq(code, 0); t.eq(type(msg), 'string')
	r, err = sock.sleep_until(sock.clock())
	t.eq(err, 'not_in_thread')
end)

t.test('many sleepers wake in deadline order', function()
	local order = {}
	local n = 200
	local base = sock.clock() + 0.02
	for i = 1, n do
		local d = ((i * 7919) % n) * 0.001 -- a permutation of deadlines, 1 ms apart
		sock.newthread(function()
			sock.sleep_until(base + d)
			order[#order + 1] = d
		end)
	end
	u.loop(3)
	t.eq(#order, n)
	for i = 2, n do
		t.ok(order[i] >= order[i - 1], 'in order at ' .. i)
	end
end)

---------------------------------------------------------------- epoll_fd, iocp

t.test('epoll_fd() returns this loop\'s epoll descriptor, the same each time', function()
	local fd = sock.epoll_fd()
	t.eq(type(fd), 'number')
	t.ok(fd >= 0)
	t.eq(sock.epoll_fd(), fd)
	local p = io.popen(('readlink /proc/%d/fd/%d'):format(require'ffi'.C.getpid(), fd))
	local link = p:read'*l'
	p:close()
	t.eq(link, 'anon_inode:[eventpoll]')
end)

t.test("epoll_fd(epfd) after this loop's first I/O: nil, 'invalid_argument'", function()
	local fd = sock.epoll_fd()
	local r, err, code, msg = sock.epoll_fd(fd)
	t.eq(r, nil); t.eq(err, 'invalid_argument'); t.eq(type(code), 'number')
	t.has(msg, 'before')
	t.eq(sock.epoll_fd(), fd, 'the loop keeps its instance')
	t.raises("sock.epoll_fd: bad argument #1 'epfd'", sock.epoll_fd, 'x')
end)

t.test('epoll_fd(epfd) before the first I/O shares the instance (fresh process)', function()
	local out = u.subprocess[[
		local ffi = require'ffi'
		ffi.cdef'int epoll_create1(int flags);'
		local sock = require'sock'
		local ep = ffi.C.epoll_create1(0)
		assert(ep >= 0)
		local r = sock.epoll_fd(ep)
		io.write('set=', tostring(r == ep), '\n')
		local got = sock.epoll_fd()
		-- the loop keeps a duplicate of epfd: the same instance
		io.write('get=', tostring(type(got) == 'number'), '\n')
		-- I/O works on the shared instance
		local srv = assert(sock.tcp())
		assert(srv:listen('127.0.0.1', 0))
		local port = srv:getsockname():port()
		local n
		sock.newthread(function()
			local c = assert(srv:accept(sock.clock() + 2))
			local buf = ffi.new'char[8]'
			n = c:recv(buf, 8, sock.clock() + 2)
			c:close()
		end)
		sock.newthread(function()
			local c = assert(sock.tcp())
			assert(c:connect('127.0.0.1', port, sock.clock() + 2))
			assert(c:send('hello'))
			c:close()
		end)
		assert(sock.start())
		io.write('io=', tostring(n), '\n')
		local r2, err = sock.epoll_fd(ep)
		io.write('again=', tostring(r2), ',', tostring(err), '\n')
		local r3, err3 = sock.iocp()
		io.write('iocp=', tostring(r3), ',', tostring(err3), '\n')
	]]
	t.has(out, 'set=true\n')
	t.has(out, 'get=true\n')
	t.has(out, 'io=5\n')
	t.has(out, 'again=nil,invalid_argument\n')
	t.has(out, 'iocp=nil,not_supported\n')
end)

t.test('epoll_fd(epfd) with a descriptor that is not an epoll instance fails (fresh process)', function()
	local out = u.subprocess[[
		local sock = require'sock'
		local r, err = sock.epoll_fd(0) -- stdin
		io.write('r=', tostring(r), ' err=', tostring(err), '\n')
		-- the loop still works with its own instance afterwards
		local ok = false
		sock.newthread(function() sock.sleep(0.01); ok = true end)
		sock.start()
		io.write('ok=', tostring(ok), '\n')
	]]
	t.has(out, 'r=nil err=')
	t.has(out, 'ok=true\n')
end)

t.test("iocp(): nil, 'not_supported' on Linux", function()
	local r, err, code, msg = sock.iocp()
	t.eq(r, nil); t.eq(err, 'not_supported'); t.eq(code, 0); t.eq(type(msg), 'string')
	t.eq(select(2, sock.iocp(12345)), 'not_supported', 'setting too')
end)
