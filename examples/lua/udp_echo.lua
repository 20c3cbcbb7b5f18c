-- udp_echo.lua: a UDP echo server and a client, as two sock threads of one
-- process, on loopback.
--
--   LUA_CPATH='target/lua/?.so;;' luajit examples/lua/udp_echo.lua [count] [port]
--
-- count: the datagrams the client sends (default 10); port: the server's port
-- (default 0: any free port). The client connects its socket to the server,
-- which makes the kernel drop datagrams from anyone else, sends each datagram
-- and waits for its echo with a deadline (UDP may lose datagrams: it retries
-- once). Then it closes the server socket (also when the client failed), whose
-- pending recvnext returns 'closed', and the program ends with its threads.
local sock = require'sock'
local ffi = require'ffi'

local count = tonumber(arg[1]) or 10
local port = tonumber(arg[2]) or 0

local server = assert(sock.udp())
assert(server:bind('127.0.0.1', port))
local server_addr = server:getsockname()
print('udp echo server on ' .. tostring(server_addr))

-- The server: recvnext gives each datagram and where it came from; sendto
-- answers there.
sock.newthread(function()
	local buf = ffi.new('uint8_t[?]', 64 * 1024) -- the largest UDP datagram
	while true do
		local n, from, code, msg = server:recvnext(buf, ffi.sizeof(buf))
		if not n then
			print('server: ' .. from) -- 'closed' when the client closes us
			return
		end
		local ok, err = server:sendto(from, nil, buf, n) -- an sa in place of host, port
		if not ok then print('server: sendto ' .. tostring(from) .. ': ' .. err) end
	end
end)

-- The client.
local function client()
	local c = assert(sock.udp())
	assert(c:connect(server_addr)) -- binds an ephemeral port; filters by source
	print('client on ' .. tostring(c:getsockname()))
	local buf = ffi.new('char[?]', 1500)
	local rtt, lost = 0, 0
	for i = 1, count do
		local msg = ('datagram %d of %d'):format(i, count)
		for attempt = 1, 2 do
			local t = sock.clock()
			assert(c:send(msg))
			local n, err = c:recv(buf, 1500, sock.clock() + 0.5)
			if n then
				assert(ffi.string(buf, n) == msg, 'echo differs')
				rtt = rtt + (sock.clock() - t)
				break
			end
			-- A lost datagram: the deadline closed the socket (the seed's
			-- semantics); try once more on a new one.
			assert(err == 'timeout', err)
			lost = lost + 1
			c = assert(sock.udp())
			assert(c:connect(server_addr))
		end
	end
	print(('client: %d datagrams echoed, %d retries, average round trip %.0f us'):format(
		count, lost, rtt / count * 1e6))
	c:close()
end

local failed
sock.newthread(function()
	-- LuaJIT can yield across xpcall: the client's I/O works inside it.
	local ok, err = xpcall(client, debug.traceback)
	if not ok then failed = err end
	server:close() -- wakes the server's recvnext with nil, 'closed'
end)

sock.start() -- returns when both threads are done
if failed then
	io.stderr:write('udp_echo: client failed: ', failed, '\n')
	os.exit(1)
end
print('done')
