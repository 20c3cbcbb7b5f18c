-- Load: 1,000 client threads echoing through one server, 8 MiB through
-- sendall/recvall (content checked), many datagrams, many sleepers.
-- Loopback only; each test is bounded (a few seconds at most).

local t = require'tap'
local ffi = require'ffi'
local sock = require'sock'
local u = require'util'

local exp = u.exp

ffi.cdef[[
struct sock_rlimit { unsigned long cur, max; };
int getrlimit(int resource, struct sock_rlimit *rlim);
int setrlimit(int resource, const struct sock_rlimit *rlim);
]]

-- Makes room for `n` descriptors (raising the soft limit up to the hard
-- one); returns false if the limit does not allow it.
local function room_for(n)
	local RLIMIT_NOFILE = 7
	local r = ffi.new'struct sock_rlimit'
	if ffi.C.getrlimit(RLIMIT_NOFILE, r) ~= 0 then return false end
	if r.cur >= n then return true end
	if r.max < n then return false end
	r.cur = n
	return ffi.C.setrlimit(RLIMIT_NOFILE, r) == 0
end

t.test('1,000 client threads echo through one server', function()
	local N = 1000
	if not room_for(2 * N + 100) then t.skip('the descriptor limit is below ' .. (2 * N + 100)) end
	local srv, port = u.listener()
	local echoed, handlers, failures = 0, 0, {}
	local t0 = sock.clock()
	u.run(20, function()
		-- the server: one handler thread per connection
		for _ = 1, N do
			local c = assert(srv:accept(exp(10)))
			sock.newthread(function()
				handlers = handlers + 1
				local buf = ffi.new'char[64]'
				while true do
					local n, err = c:recv(buf, 64, exp(10))
					if not n then
						if err ~= 'closed' then failures[#failures + 1] = 'server recv: ' .. err end
						break -- the client's FIN ends the echo
					end
					assert(c:sendall(buf, n, exp(10)))
				end
				c:close()
			end)
		end
		srv:close()
	end, function()
		for i = 1, N do
			sock.newthread(function()
				local c = assert(sock.tcp())
				assert(c:connect('127.0.0.1', port, exp(10)))
				local msg = ('client %04d says hi'):format(i)
				assert(c:sendall(msg, nil, exp(10)))
				local buf = ffi.new('char[?]', #msg)
				assert(c:recvall(buf, #msg, exp(10)))
				assert(ffi.string(buf, #msg) == msg, 'echo of ' .. i)
				assert(c:shutdown('w'))
				assert(select(2, c:recv(buf, 1, exp(10))) == 'closed', 'the server closed')
				c:close()
				echoed = echoed + 1
			end)
		end
	end)
	t.eq(#failures, 0, table.concat(failures, '; '))
	t.eq(handlers, N)
	t.eq(echoed, N)
	t.ok(sock.clock() - t0 < 20)
end)

t.test('1,000 concurrent connections held open at once', function()
	local N = 1000
	if not room_for(2 * N + 100) then t.skip('the descriptor limit is below ' .. (2 * N + 100)) end
	local srv, port = u.listener()
	local peak, open, done = 0, 0, 0
	local release = false
	u.run(20, function()
		for _ = 1, N do
			local c = assert(srv:accept(exp(10)))
			sock.newthread(function()
				local buf = ffi.new'char[1]'
				assert(select(2, c:recv(buf, 1, exp(10))) == 'closed')
				c:close()
			end)
		end
		srv:close()
	end, function()
		for i = 1, N do
			sock.newthread(function()
				local c = assert(sock.tcp())
				assert(c:connect('127.0.0.1', port, exp(10)))
				open = open + 1
				if open > peak then peak = open end
				while not release do sock.sleep(0.01) end
				c:close()
				open = open - 1
				done = done + 1
			end)
		end
		while open < N do sock.sleep(0.01) end
		release = true
	end)
	t.eq(peak, N)
	t.eq(done, N)
	t.ok(u.fdcount(8192) < 1000, 'all closed')
end)

t.test('8 MiB through sendall/recvall, content checked', function()
	local SIZE = 8 * 1024 * 1024
	local data = u.pattern(SIZE, 42)
	local res = {}
	local dt = u.run(10, function()
		local c, a = u.pair()
		sock.newthread(function()
			res.sent = c:sendall(data, SIZE, exp(10))
			c:close()
		end)
		local got = ffi.new('uint8_t[?]', SIZE)
		res.recv = a:recvall(got, SIZE, exp(10))
		res.same = u.same(got, data, SIZE)
		res.eof = select(2, a:recv(got, 1, exp()))
		a:close()
	end)
	t.eq(res.sent, true); t.eq(res.recv, true)
	t.eq(res.same, true, 'the bytes arrived intact and in order')
	t.eq(res.eof, 'closed')
	t.ok(dt < 10, 'in ' .. dt .. ' s')
end)

t.test('8 MiB both ways at once (full duplex), content checked', function()
	local SIZE = 8 * 1024 * 1024
	local d1, d2 = u.pattern(SIZE, 1), u.pattern(SIZE, 2)
	local ok = {}
	u.run(10, function()
		local c, a = u.pair()
		local g1, g2 = ffi.new('uint8_t[?]', SIZE), ffi.new('uint8_t[?]', SIZE)
		local n = 0
		local function fin() n = n + 1 end
		sock.newthread(function() ok.s1 = c:sendall(d1, SIZE, exp(10)); fin() end)
		sock.newthread(function() ok.s2 = a:sendall(d2, SIZE, exp(10)); fin() end)
		sock.newthread(function() ok.r1 = a:recvall(g1, SIZE, exp(10)); fin() end)
		sock.newthread(function() ok.r2 = c:recvall(g2, SIZE, exp(10)); fin() end)
		while n < 4 do sock.sleep(0.01) end
		ok.same1, ok.same2 = u.same(g1, d1, SIZE), u.same(g2, d2, SIZE)
		c:close(); a:close()
	end)
	t.eq(ok.s1, true); t.eq(ok.s2, true); t.eq(ok.r1, true); t.eq(ok.r2, true)
	t.eq(ok.same1, true); t.eq(ok.same2, true)
end)

t.test('sizes 0, 1, 17, 200, 4091, 80199 through send/recv loops', function()
	local res = {}
	u.run(function()
		local c, a = u.pair()
		for _, n in ipairs{0, 1, 17, 200, 4091, 80199} do
			local data = u.pattern(math.max(n, 1), n)
			sock.newthread(function() assert(c:sendall(data, n, exp())) end)
			local got = ffi.new('uint8_t[?]', math.max(n, 1))
			local have = 0
			while have < n do
				local k = assert(a:recv(ffi.cast('uint8_t*', got) + have, n - have, exp()))
				assert(k > 0)
				have = have + k
			end
			res[#res + 1] = u.same(got, data, n) and n or ('bad ' .. n)
		end
		c:close(); a:close()
	end)
	t.eq(table.concat(res, ','), '0,1,17,200,4091,80199')
end)

t.test('10,000 datagrams between two udp sockets, none lost on loopback', function()
	local a, pa = u.udp()
	local b = u.udp()
	assert(a:setopt('so_rcvbuf', 4 * 1024 * 1024))
	local N = 10000
	local got, bad = 0, 0
	u.run(10, function()
		sock.newthread(function()
			local buf = ffi.new'char[16]'
			for i = 1, N do
				local n = assert(a:recvnext(buf, 16, exp(5)))
				if ffi.string(buf, n) ~= tostring(i) then bad = bad + 1 end
				got = got + 1
			end
		end)
		for i = 1, N do
			assert(b:sendto('127.0.0.1', pa, tostring(i)))
			if i % 100 == 0 then sock.sleep(0) end -- let the reader drain
		end
	end)
	t.eq(got, N); t.eq(bad, 0)
	a:close(); b:close()
end)

t.test('10,000 sleeping threads wake on time and in order', function()
	local N = 10000
	local woke, late, early, disorder = 0, 0, 0, 0
	local last = -1
	local base = sock.clock() + 0.1
	for i = 1, N do
		local at = base + (i % 100) * 0.001
		sock.newthread(function()
			-- (a slow build may start some threads after their deadline:
			-- those only yield once; the order is checked on the others)
			local armed = sock.clock() < at - 0.002
			sock.sleep_until(at)
			local now = sock.clock()
			if now < at then early = early + 1 end
			if armed then
				-- generous: a debug build on a loaded machine takes a while to
				-- resume 10,000 threads (test_threads checks lateness closely)
				if now - at > 1 then late = late + 1 end
				if at < last then disorder = disorder + 1 end
				last = at
			end
			woke = woke + 1
		end)
	end
	u.loop(10)
	u.check()
	t.eq(woke, N)
	t.eq(early, 0, 'never early')
	t.eq(disorder, 0, 'in deadline order')
	t.eq(late, 0)
end)

t.test('5,000 threads parked at once inside generators (more than mlua can reference)', function()
	local N = 5000
	local done = 0
	local gate = false
	for i = 1, N do
		sock.newthread(function()
			local gen = sock.cowrap(function()
				while not gate do sock.sleep(0.01) end
				coroutine.yield(i)
			end)
			if gen() == i then done = done + 1 end
		end)
	end
	sock.newthread(function() sock.sleep(0.05); gate = true end)
	u.loop(10)
	u.check()
	t.eq(done, N)
end)

t.test('many open/close cycles leak nothing', function()
	u.gc()
	local s0 = assert(sock.tcp()); assert(s0:listen('127.0.0.1', 0)); s0:close()
	local before = u.fdcount()
	local srv, port = u.listener()
	u.run(10, function()
		for _ = 1, 300 do
			local c = assert(sock.tcp())
			assert(c:connect('127.0.0.1', port, exp()))
			local a = assert(srv:accept(exp()))
			assert(c:send('x'))
			local buf = ffi.new'char[1]'
			assert(a:recv(buf, 1, exp()) == 1)
			a:close(); c:close()
			local d = assert(sock.udp()); d:close()
		end
	end)
	srv:close()
	u.gc()
	t.eq(u.fdcount(), before)
end)
