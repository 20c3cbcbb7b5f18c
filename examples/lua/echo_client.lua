-- echo_client.lua: connects to an echo server, sends lines, checks that each
-- comes back unchanged, and prints round-trip statistics.
--
--   LUA_CPATH='target/lua/?.so;;' luajit examples/lua/echo_client.lua [port] [count] [host]
--
-- port defaults to 8090, count (the number of lines) to 1000, host to 127.0.0.1.
-- Start examples/lua/echo_server.lua first. Exits non-zero on a failure.
local sock = require'sock'
local ffi = require'ffi'

local port = tonumber(arg[1]) or 8090
local count = tonumber(arg[2]) or 1000
local host = arg[3] or '127.0.0.1'

local failed = false
local function fail(what, err, msg)
	io.stderr:write(('echo_client: %s: %s (%s)\n'):format(what, tostring(err), tostring(msg)))
	failed = true
end

sock.newthread(function()
	local c = assert(sock.tcp())
	local ok, err, _, msg = c:connect(host, port, sock.clock() + 5)
	if not ok then return fail('connect to ' .. host .. ':' .. port, err, msg) end
	c:setopt('tcp_nodelay', true) -- one small line per round trip: no Nagle delay
	print(('connected to %s from %s'):format(tostring(c:getpeername()), tostring(c:getsockname())))

	local buf = ffi.new('char[?]', 256)
	local rtts = {}
	local t0 = sock.clock()
	for i = 1, count do
		local line = ('line %d of %d: the quick brown fox\n'):format(i, count)
		local t = sock.clock()
		ok, err, _, msg = c:sendall(line)
		if not ok then return fail('send', err, msg) end
		-- The echo may come back in pieces: recvall waits for all #line bytes.
		ok, err, _, msg = c:recvall(buf, #line, sock.clock() + 5)
		if not ok then return fail('receive', err, msg) end
		rtts[i] = sock.clock() - t
		local echo = ffi.string(buf, #line)
		if echo ~= line then return fail('check', 'echo differs', echo) end
	end
	local total = sock.clock() - t0
	c:close()

	table.sort(rtts)
	local sum = 0
	for i = 1, #rtts do sum = sum + rtts[i] end
	local function pct(p) return rtts[math.max(1, math.ceil(#rtts * p))] * 1e6 end
	print(('%d lines echoed in %.3f s: %.0f round trips/s'):format(count, total, count / total))
	print(('round trip (us): min %.0f  avg %.0f  p50 %.0f  p99 %.0f  max %.0f'):format(
		rtts[1] * 1e6, sum / #rtts * 1e6, pct(0.5), pct(0.99), rtts[#rtts] * 1e6))
end)

sock.start()
os.exit(failed and 1 or 0)
