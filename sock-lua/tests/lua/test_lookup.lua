-- Lookups off the loop: sock.addr and tcp:connect with a host name inside a
-- sock thread park only that thread (the resolver pool of the core), under
-- their deadline. The slow resolver is the core's test hook
-- (sock._lookup_delay: every lookup made off the loop waits that long).

local t = require'tap'
local sock = require'sock'
local u = require'util'

-- u.run(10, ...) with every lookup off the loop delayed by s seconds; the
-- delay is removed whatever happens.
local function run_delayed(s, ...)
	sock._lookup_delay(s)
	local ok, err = pcall(u.run, 10, ...)
	sock._lookup_delay(0)
	if not ok then error(err, 2) end
end

t.test('a slow lookup parks only its thread: the others keep their ticks', function()
	local res, gap, ticks, last, done = {}, 0, 0, nil, false
	run_delayed(0.5, function()
		last = sock.clock()
		while not done do
			sock.sleep(0.01)
			local now = sock.clock()
			gap = math.max(gap, now - last); last = now; ticks = ticks + 1
		end
	end, function()
		local t0 = sock.clock()
		res.ai, res.err = sock.addr('localhost', 80, 'tcp')
		res.took = sock.clock() - t0
		-- numeric hosts never go to the resolver
		t0 = sock.clock()
		res.numeric = sock.addr('127.0.0.1', 80)
		res.numeric_took = sock.clock() - t0
		done = true
	end)
	t.ok(res.ai, tostring(res.err)); t.eq(res.ai.addr:port(), 80)
	t.ok(res.took >= 0.5, 'the lookup took the delay: ' .. res.took)
	t.ok(ticks >= 10, ticks .. ' ticks')
	t.ok(gap < 0.25, 'the loop never stopped: a ' .. gap .. ' s gap')
	t.ok(res.numeric); t.ok(res.numeric_took < 0.25, 'numeric: ' .. res.numeric_took)
end)

t.test("connect's deadline wins over a slow lookup: timeout at once, the socket closed", function()
	local res = {}
	run_delayed(1, function()
		local c = assert(sock.tcp())
		local t0 = sock.clock()
		res.r = {c:connect('localhost', 9, sock.clock() + 0.1)}
		res.took = sock.clock() - t0
		res.closed = c:closed()
		t0 = sock.clock()
		res.addr = {sock.addr('localhost', 80, nil, nil, nil, nil, sock.clock() + 0.1)}
		res.addr_took = sock.clock() - t0
	end)
	t.eq(res.r[1], nil); t.eq(res.r[2], 'timeout')
	t.ok(res.took >= 0.1 and res.took < 0.8, 'timed out after ' .. res.took)
	t.eq(res.closed, true)
	t.eq(res.addr[1], nil); t.eq(res.addr[2], 'timeout')
	t.ok(res.addr_took < 0.8, 'sock.addr timed out after ' .. res.addr_took)
	u.raises_at("sock.addr: bad argument #7 'expires'", sock.addr, 'localhost', 80, nil, nil, nil, nil, 'x')
end)

t.test("closing the socket of a connect that is still resolving wakes it with 'closed'", function()
	local res = {}
	run_delayed(1, function()
		local c = assert(sock.tcp())
		sock.newthread(function() sock.sleep(0.05); c:close() end)
		local t0 = sock.clock()
		res.r = {c:connect('localhost', 9)} -- no deadline
		res.took = sock.clock() - t0
		-- the socket stays closed; a later call says so
		res.again = {c:connect('127.0.0.1', 9)}
	end)
	t.eq(res.r[1], nil); t.eq(res.r[2], 'closed')
	t.ok(res.took < 0.5, "woken by the close, not by the lookup's end: " .. res.took)
	t.eq(res.again[2], 'closed')
end)

t.test('1,000 concurrent lookups of localhost all succeed; connect by name works', function()
	local n, port_ok = 0, true
	local fns = {}
	for i = 1, 1000 do
		fns[i] = function()
			local ai = assert(sock.addr('localhost', 80 + i % 10))
			if ai.addr:port() ~= 80 + i % 10 then port_ok = false end
			n = n + 1
		end
	end
	u.run(20, unpack(fns))
	t.eq(n, 1000); t.eq(port_ok, true)
	local got
	u.run(function()
		local srv, port = u.listener()
		sock.newthread(function() got = assert(srv:accept(u.exp())) end)
		local c = assert(sock.tcp())
		assert(c:connect('localhost', port, u.exp()))
		while not got do sock.sleep(0.001) end
		c:close(); got:close(); srv:close()
	end)
	t.ok(got, 'connected by name')
end)

t.test('bind, listen, udp:connect and sendto with a host name resolve off the loop too', function()
	local res, ticks, done = {}, 0, false
	run_delayed(0.2, function()
		while not done do sock.sleep(0.01); ticks = ticks + 1 end
	end, function()
		local t0 = sock.clock()
		local l = assert(sock.tcp())
		res.listen = {l:listen('localhost', 0)}
		local b = assert(sock.udp())
		res.bind = {b:bind('localhost', 0)}
		local port = b:getsockname():port()
		local a = assert(sock.udp())
		res.sendto = {a:sendto('localhost', port, 'by name', nil, u.exp())}
		res.connect = {a:connect('localhost', port)}
		local buf = require'ffi'.new'char[16]'
		res.got = {b:recvnext(buf, 16, u.exp())}
		res.took = sock.clock() - t0
		l:close(); a:close(); b:close()
		done = true
	end)
	t.eq(res.listen[1], true, tostring(res.listen[2]))
	t.eq(res.bind[1], true, tostring(res.bind[2]))
	t.eq(res.sendto[1], 7, tostring(res.sendto[2]))
	t.eq(res.connect[1], true, tostring(res.connect[2]))
	t.eq(res.got[1], 7)
	t.ok(res.took >= 0.8, 'four lookups of 0.2 s: ' .. res.took)
	t.ok(ticks >= 20, 'the ticker ran meanwhile: ' .. ticks .. ' ticks')
end)

-- The real thing: a name server that never answers (a UDP socket on
-- 127.0.0.53:53 that reads nothing), in private mount and network
-- namespaces (unshare) where /etc/resolv.conf points at it with a 1 s
-- timeout. Skipped where unshare cannot make them.
local SLOW_DNS = [[
local sock = require'sock'
local silent = assert(sock.udp())
assert(silent:bind('127.0.0.53', 53))
local gap, ticks, last, done, res = 0, 0, nil, false, {}
sock.newthread(function()
	last = sock.clock()
	while not done do
		sock.sleep(0.01)
		local now = sock.clock()
		gap = math.max(gap, now - last); last = now; ticks = ticks + 1
	end
end)
sock.newthread(function()
	local t0 = sock.clock()
	res.ai, res.err = sock.addr('slow.example.com', 80, 'tcp')
	res.took = sock.clock() - t0
	local c = assert(sock.tcp())
	t0 = sock.clock()
	res.c, res.cerr = c:connect('slow.example.com', 80, sock.clock() + 0.3)
	res.ctook = sock.clock() - t0
	done = true
end)
assert(sock.start(20))
print(('result %s %s took %.3f gap %.3f ticks %d connect %s %s ctook %.3f'):format(
	tostring(res.ai), tostring(res.err), res.took, gap, ticks,
	tostring(res.c), tostring(res.cerr), res.ctook))
]]

t.test('a silent name server on loopback stalls only the thread that asks', function()
	local probe = io.popen("unshare -rmn sh -c 'ip link set lo up && echo yes' 2>/dev/null")
	local can = probe and probe:read'*l' == 'yes'
	if probe then probe:close() end
	if not can then
		t.skip('unshare -rmn (user, mount and network namespaces) is not available here')
		return
	end
	local dir = os.tmpname(); os.remove(dir); assert(os.execute('mkdir -p ' .. dir) == 0)
	local conf = assert(io.open(dir .. '/resolv.conf', 'w'))
	conf:write('nameserver 127.0.0.53\noptions timeout:1 attempts:1\n'); conf:close()
	local script = assert(io.open(dir .. '/slow.lua', 'w')); script:write(SLOW_DNS); script:close()
	local exe = arg and arg[-1] or 'luajit'
	local cpath = os.getenv'LUA_CPATH' or package.cpath
	local cmd = ("unshare -rmn sh -c 'ip link set lo up && mount --bind %s/resolv.conf /etc/resolv.conf && "
		.. "LUA_CPATH=\"%s\" timeout 30 %s %s/slow.lua' 2>&1"):format(dir, cpath, exe, dir)
	local p = assert(io.popen(cmd))
	local out = p:read'*a'
	p:close()
	os.execute('rm -rf ' .. dir)
	local ai, err, took, gap, ticks, c, cerr, ctook = out:match(
		'result (%S+) (%S+) took (%S+) gap (%S+) ticks (%d+) connect (%S+) (%S+) ctook (%S+)')
	t.ok(ai, 'the script ran: ' .. out)
	t.eq(ai, 'nil', 'no answer: ' .. out)
	t.ok(err == 'try_again' or err == 'host_not_found' or err == 'lookup_failed', err)
	t.ok(tonumber(took) >= 0.9, 'the resolver waited for its timeout: ' .. took)
	t.ok(tonumber(gap) < 0.25, 'the loop went on meanwhile: a ' .. gap .. ' s gap')
	t.ok(tonumber(ticks) >= 40, ticks .. ' ticks')
	t.eq(c, 'nil'); t.eq(cerr, 'timeout')
	t.ok(tonumber(ctook) < 0.8, "connect's deadline won: " .. ctook)
end)
