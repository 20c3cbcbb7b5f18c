-- Iterators that do I/O: coroutine.wrap / coroutine.resume inside sock
-- threads, and sock.cowrap. The generator does socket I/O between its yields;
-- its waits park only itself (the other threads keep running); its yields
-- reach the consumer; its errors propagate to the consumer; a finished one
-- gives 'cannot resume dead coroutine'.

local t = require'tap'
local ffi = require'ffi'
local sock = require'sock'
local u = require'util'

local exp = u.exp

-- A generator body that reads lines of `n` bytes from `s` and yields them,
-- returning at end of stream.
local function line_reader(s, n)
	return function()
		local buf = ffi.new('char[?]', n)
		while true do
			local r, err = s:recvall(buf, n, exp())
			if not r then
				if err == 'closed' then return 'done' end
				error('recvall: ' .. tostring(err))
			end
			coroutine.yield(ffi.string(buf, n))
		end
	end
end

-- A thread that sends `lines` to `s`, one every `d` seconds, then closes it.
local function slow_sender(s, lines, d)
	return function()
		for _, l in ipairs(lines) do
			sock.sleep(d)
			assert(s:sendall(l))
		end
		s:close()
	end
end

for _, variant in ipairs{'coroutine.wrap', 'sock.cowrap'} do
	local wrap = variant == 'coroutine.wrap'
		and function(f) return coroutine.wrap(f) end
		or function(f) return sock.cowrap(f) end

	t.test(variant .. ': a generator with I/O between yields, in a for loop', function()
		local got, ticks, ticks_at = {}, 0, {}
		u.run(function()
			local c, a = u.pair()
			sock.newthread(slow_sender(a, {'one', 'two', 'six'}, 0.03))
			-- a ticker: runs while the generator waits for data
			sock.newthread(function()
				for _ = 1, 20 do sock.sleep(0.005); ticks = ticks + 1 end
			end)
			for line in wrap(line_reader(c, 3)) do
				if line == 'done' then break end
				got[#got + 1] = line
				ticks_at[#ticks_at + 1] = ticks
			end
			c:close()
		end)
		t.eq(table.concat(got, ','), 'one,two,six')
		t.ok(ticks_at[1] > 0, 'other threads ran while the generator waited')
		t.ok(ticks_at[2] > ticks_at[1], 'and between the yields')
	end)

	t.test(variant .. ': the yields reach the consumer with all their values', function()
		local got = {}
		u.run(function()
			local gen = wrap(function(a, b)
				local x, y = coroutine.yield(a + b, 'sum', nil, true)
				sock.sleep(0.001)
				local z = coroutine.yield(x .. y)
				sock.sleep(0.001)
				return 'end', z
			end)
			got[1] = (function(...) return {n = select('#', ...), ...} end)(gen(1, 2))
			got[2] = {gen('p', 'q')}
			got[3] = {gen('zz')}
		end)
		t.eq(got[1][1], 3); t.eq(got[1][2], 'sum'); t.eq(got[1][3], nil); t.eq(got[1][4], true)
		t.eq(got[1].n, 4, 'four values, a nil among them')
		t.eq(got[2][1], 'pq')
		t.eq(got[3][1], 'end'); t.eq(got[3][2], 'zz')
	end)

	t.test(variant .. ': an error in the generator propagates to the consumer', function()
		local res = {}
		u.run(function()
			local gen = wrap(function()
				coroutine.yield(1)
				sock.sleep(0.001)
				error('generator failed')
			end)
			res.first = gen()
			res.ok, res.err = pcall(gen)
			res.after = {pcall(gen)}
		end)
		t.eq(res.first, 1)
		t.eq(res.ok, false)
		t.has(tostring(res.err), 'generator failed')
		t.eq(res.after[1], false)
		t.has(tostring(res.after[2]), 'cannot resume dead coroutine')
	end)

	t.test(variant .. ': an error value that is not a string propagates as it is', function()
		local res = {}
		u.run(function()
			local e = {code = 7}
			local gen = wrap(function() sock.sleep(0.001); error(e) end)
			local ok, err = pcall(gen)
			res.ok, res.same = ok, rawequal(err, e)
		end)
		t.eq(res.ok, false)
		t.eq(res.same, true)
	end)

	t.test(variant .. ": a finished generator: 'cannot resume dead coroutine'", function()
		local res = {}
		u.run(function()
			local gen = wrap(function() sock.sleep(0.001); return 'last' end)
			res.last = gen()
			res.ok, res.err = pcall(gen)
		end)
		t.eq(res.last, 'last')
		t.eq(res.ok, false)
		t.has(tostring(res.err), 'cannot resume dead coroutine')
	end)

	t.test(variant .. ': an uncaught generator error fails the consumer thread (onerror)', function()
		local got = {}
		sock.onerror(function(err) got[#got + 1] = tostring(err) end)
		local after = false
		sock.newthread(function()
			local gen = wrap(function() sock.sleep(0.001); error('uncaught in generator') end)
			gen()
			after = true
		end)
		local ok, e = pcall(u.loop, 2)
		u.record_errors()
		assert(ok, e)
		t.eq(after, false)
		t.eq(#got, 1)
		t.has(got[1], 'uncaught in generator')
	end)

	t.test(variant .. ': several consumers, each with a generator, interleave', function()
		local log = {}
		local function consumer(name)
			return function()
				local gen = wrap(function()
					for i = 1, 3 do sock.sleep(0.01); coroutine.yield(i) end
				end)
				for i in gen do log[#log + 1] = name .. i end
			end
		end
		u.run(consumer('a'), consumer('b'))
		t.eq(#log, 6)
		t.eq(table.concat(log, ' '), 'a1 b1 a2 b2 a3 b3')
	end)

	t.test(variant .. ': a generator that only computes works as a plain one', function()
		local got = {}
		u.run(function()
			for i in wrap(function() for i = 1, 5 do coroutine.yield(i * i) end end) do
				got[#got + 1] = i
			end
		end)
		t.eq(table.concat(got, ','), '1,4,9,16,25')
	end)

	t.test(variant .. ': nested generators with I/O', function()
		local got = {}
		u.run(function()
			local c, a = u.pair()
			sock.newthread(slow_sender(a, {'aa', 'bb', 'cc'}, 0.01))
			local lines = wrap(line_reader(c, 2))
			local upper = wrap(function()
				for l in lines do
					if l == 'done' then return end
					sock.sleep(0.001)
					coroutine.yield(l:upper())
				end
			end)
			for l in upper do got[#got + 1] = l end
			c:close()
		end)
		t.eq(table.concat(got, ','), 'AA,BB,CC')
	end)
end

t.test('coroutine.resume inside a thread: true, values / false, err, with I/O', function()
	local res = {}
	u.run(function()
		local co = coroutine.create(function(x)
			sock.sleep(0.005)
			local y = coroutine.yield(x * 2)
			sock.sleep(0.005)
			error('stop ' .. y)
		end)
		res[1] = {coroutine.resume(co, 21)}
		res.status1 = coroutine.status(co)
		res[2] = {coroutine.resume(co, 'here')}
		res.status2 = coroutine.status(co)
		res[3] = {coroutine.resume(co)}
	end)
	t.eq(res[1][1], true); t.eq(res[1][2], 42)
	t.eq(res.status1, 'suspended')
	t.eq(res[2][1], false); t.has(tostring(res[2][2]), 'stop here')
	t.eq(res.status2, 'dead')
	t.eq(res[3][1], false); t.has(tostring(res[3][2]), 'cannot resume dead coroutine')
end)

t.test('coroutine.wrap errors in a thread read like coroutine.wrap outside', function()
	local function boom() error('same text') end
	local ok0, plain = pcall(coroutine.wrap(boom))
	local res = {}
	u.run(function()
		res.ok, res.err = pcall(coroutine.wrap(boom))
		res.ok2, res.err2 = pcall(sock.cowrap(boom))
	end)
	t.eq(ok0, false); t.eq(res.ok, false); t.eq(res.ok2, false)
	t.eq(res.err, plain)
	t.eq(res.err2, plain)
end)

t.test('sock.cowrap outside a thread: a plain generator (no I/O waits)', function()
	local gen = sock.cowrap(function(a)
		local b = coroutine.yield(a + 1)
		return b * 2
	end)
	t.eq(gen(1), 2)
	t.eq(gen(5), 10)
	local ok, err = pcall(gen)
	t.eq(ok, false); t.has(err, 'cannot resume dead coroutine')
	-- a wait in it: not_in_thread
	local w = sock.cowrap(function() return sock.sleep(0.01) end)
	t.eq(select(2, w()), 'not_in_thread')
end)

t.test('coroutine.wrap outside threads is the standard one', function()
	local gen = coroutine.wrap(function() coroutine.yield(1) coroutine.yield(2) end)
	t.eq(gen(), 1); t.eq(gen(), 2)
	gen()
	t.raises('cannot resume dead coroutine', gen)
end)

t.test('a generator resumed from within itself is refused', function()
	local res = {}
	u.run(function()
		local co
		co = coroutine.create(function()
			sock.sleep(0.001)
			return coroutine.resume(co)
		end)
		res = {coroutine.resume(co)}
	end)
	t.eq(res[1], true)
	t.eq(res[2], false)
	t.has(tostring(res[3]), 'cannot resume non-suspended coroutine')
end)

t.test('a generator that closes its socket: the consumer sees the end', function()
	local got = {}
	u.run(function()
		local c, a = u.pair()
		local gen = sock.cowrap(function()
			local buf = ffi.new'char[4]'
			sock.sleep(0.01)
			a:close()
			local n, err = c:recv(buf, 4, exp())
			coroutine.yield(n or err)
			c:close()
			return 'closed'
		end)
		got[1] = gen(); got[2] = gen()
	end)
	t.eq(got[1], 'closed', 'the end of stream'); t.eq(got[2], 'closed')
end)

t.test('a thread started inside a generator, and a generator in a new thread', function()
	local log = {}
	u.run(function()
		local gen = sock.cowrap(function()
			sock.newthread(function()
				local inner = coroutine.wrap(function()
					sock.sleep(0.005)
					coroutine.yield('inner')
				end)
				local v = inner() -- (not log[#log + 1] = inner(): #log is read before the wait)
				log[#log + 1] = v
			end)
			sock.sleep(0.01)
			coroutine.yield('outer')
		end)
		local v = gen()
		log[#log + 1] = v
	end)
	t.eq(table.concat(log, ','), 'inner,outer')
end)

t.test('generators with I/O still work after the module is loaded again', function()
	local old = sock
	package.loaded.sock = nil
	local new = require'sock'
	package.loaded.sock = old
	local got = {}
	local function consumer(m, name)
		return function()
			for v in m.cowrap(function()
				for i = 1, 2 do m.sleep(0.002); coroutine.yield(name .. i) end
			end) do got[#got + 1] = v end
			for v in coroutine.wrap(function()
				m.sleep(0.002); coroutine.yield(name .. 'w')
			end) do got[#got + 1] = v end
		end
	end
	old.newthread(consumer(old, 'old'))
	new.newthread(consumer(new, 'new'))
	u.loop(2)
	u.check()
	table.sort(got)
	t.eq(table.concat(got, ','), 'new1,new2,neww,old1,old2,oldw')
end)

t.test('a generator waiting inside one thread cannot be resumed by another', function()
	local res = {}
	u.run(function()
		local gen = sock.cowrap(function()
			for i = 1, 2 do
				local t0 = sock.clock()
				sock.sleep(0.05)
				coroutine.yield(i, sock.clock() - t0)
			end
		end)
		sock.newthread(function()
			sock.sleep(0.01) -- while the first consumer waits inside gen
			res.b = {pcall(gen)}
			sock.sleep(0.06) -- gen yielded to the first consumer: free to resume
			res.b2 = {pcall(gen)}
		end)
		res.a = {gen()}
	end)
	t.eq(res.b[1], false)
	t.has(tostring(res.b[2]), 'cannot resume non-suspended coroutine')
	t.eq(res.a[1], 1)
	t.ok(res.a[2] >= 0.05, 'the sleep was not cut short: ' .. res.a[2])
	t.eq(res.b2[1], true); t.eq(res.b2[2], 2, 'a suspended generator can be shared')
end)

t.test('a sock thread cannot be resumed by hand, inside or outside threads', function()
	local res = {}
	local co = sock.newthread(function() sock.sleep(0.05); res.woke = sock.clock() end)
	local t0 = sock.clock()
	res.outside = {coroutine.resume(co)}
	sock.newthread(function() res.inside = {coroutine.resume(co)} end)
	u.loop(2)
	u.check()
	t.eq(res.outside[1], false)
	t.has(res.outside[2], 'cannot resume non-suspended coroutine')
	t.eq(res.inside[1], false)
	t.has(res.inside[2], 'cannot resume non-suspended coroutine')
	t.ok(res.woke - t0 >= 0.05, 'the thread slept its full time')
end)

t.test('a generator used in a thread, then outside: its waits give not_in_thread', function()
	local gen = sock.cowrap(function()
		coroutine.yield(sock.sleep(0.001))
		coroutine.yield(sock.sleep(0.001))
	end)
	local first
	u.run(function() first = {n = select('#', gen())} end)
	t.eq(first.n, 0, 'inside the thread the sleep returned nothing')
	local r = {gen()}
	t.eq(r[1], nil); t.eq(r[2], 'not_in_thread', 'outside, the wait fails as it should')
end)
