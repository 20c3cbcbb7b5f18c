-- demo.lua: the main Lua demo. An echo server and many client threads in one
-- process, on loopback, all on one OS thread's loop (the Lua twin of
-- examples/demo.rs).
--
-- Phase 1 (ping-pong): every client sends a 64-byte message and waits for its
-- echo, over and over. Phase 2 (bulk): a few clients (16 at most) stream 64 KiB
-- writes from one thread while a second thread per client drains the echo
-- from the same socket (full duplex). It prints progress every half second and
-- the throughput it reached, then ends by itself.
--
--   bash scripts/demo-lua.sh [clients] [seconds]
--   LUA_CPATH='target/lua/?.so;;' luajit examples/lua/demo.lua [clients] [seconds]
--
-- clients defaults to 200, seconds (per phase) to 2.
local sock = require'sock'
local ffi = require'ffi'
local clock = sock.clock

local clients = tonumber(arg[1]) or 200
local seconds = tonumber(arg[2]) or 2

io.stdout:setvbuf'line'

-- Errors of client threads: counted and the first one shown; the demo then
-- exits non-zero.
local errors, first_error = 0, nil
local function failed(what, err, msg)
	errors = errors + 1
	first_error = first_error or ('%s: %s (%s)'):format(what, tostring(err), tostring(msg))
end
sock.onerror(function(err) failed('thread raised', err, '') end)

-- The server: one acceptor thread, one echo thread per connection.
local listener = assert(sock.tcp())
assert(listener:listen('127.0.0.1', 0)) -- the maximum backlog, any free port
local addr = listener:getsockname()

local function echo(c)
	local buf = ffi.new('uint8_t[?]', 64 * 1024)
	while true do
		local n = c:recv(buf, 64 * 1024)
		if not n then break end -- the client closed: nil, 'closed' (or failed)
		if not c:sendall(buf, n) then break end
	end
	c:close()
end

sock.newthread(function()
	while true do
		local c, err = listener:accept()
		if not c then
			if err == 'closed' then return end -- the demo is over
			failed('accept', err)
			sock.sleep(0.01)
		else
			sock.newthread(echo, c)
		end
	end
end)

-- Counters of one phase, and a thread that prints them every half second.
local function progress(name, stats, start, finish)
	sock.newthread(function()
		while clock() + 0.5 <= finish do
			sock.sleep(0.5)
			local t = clock() - start
			print(('  %-9s %4.1f s  %9d messages  %9.0f msg/s  %8.1f MB/s'):format(
				name, t, stats.messages, stats.messages / t, stats.bytes / t / 1e6))
		end
	end)
end

-- Starts n client threads running f(stats, finish); returns a function that
-- tells whether they have all finished.
local function spawn(n, f, stats, finish)
	local running = n
	for _ = 1, n do
		sock.newthread(function()
			f(stats, finish)
			running = running - 1
		end)
	end
	return function() return running == 0 end
end

local function connect()
	local c = assert(sock.tcp())
	local ok, err, _, msg = c:connect(addr, nil, clock() + 5)
	if not ok then
		failed('connect', err, msg)
		c:close()
		return nil
	end
	return c
end

-- Phase 1: ping-pong 64-byte messages until finish.
local function ping_pong(stats, finish)
	local c = connect()
	if not c then return end
	c:setopt('tcp_nodelay', true)
	local msg = string.rep('x', 64)
	local buf = ffi.new('uint8_t[64]')
	while clock() < finish do
		local ok, err, _, m = c:sendall(msg)
		if ok then ok, err, _, m = c:recvall(buf, 64, clock() + 5) end
		if not ok then failed('ping-pong', err, m) break end
		stats.messages = stats.messages + 1
		stats.bytes = stats.bytes + 64
	end
	c:close()
end

-- Phase 2: stream 64 KiB writes until finish while another thread reads the
-- echo back from the same socket; shutdown('w') tells the server we are done,
-- its FIN (recv returns 0) tells the reader.
local function bulk(stats, finish)
	local c = connect()
	if not c then return end
	local reading = true
	sock.newthread(function()
		local buf = ffi.new('uint8_t[?]', 64 * 1024)
		while true do
			local n, err, _, m = c:recv(buf, 64 * 1024, clock() + 5)
			if not n then
				if err ~= 'closed' then failed('bulk read', err, m) end -- 'closed': the end
				break
			end
			stats.messages = stats.messages + 1
			stats.bytes = stats.bytes + n
		end
		reading = false
	end)
	local chunk = string.rep('y', 64 * 1024)
	while clock() < finish do
		local ok, err, _, m = c:sendall(chunk, nil, clock() + 5)
		if not ok then failed('bulk write', err, m) break end
	end
	c:shutdown'w'
	while reading do sock.sleep(0.01) end
	c:close()
end

-- The conductor: runs the phases one after the other, then closes the
-- listener, which ends the acceptor; sock.start() returns when every thread
-- is done.
print(('sock demo (LuaJIT): echo server on %s, one OS thread, %d client threads')
	:format(tostring(addr), clients))
sock.newthread(function()
	for _, phase in ipairs{
		{name = 'ping-pong', n = clients, f = ping_pong},
		{name = 'bulk', n = math.min(16, clients), f = bulk},
	} do
		print(('%s: %d connections for %g s'):format(phase.name, phase.n, seconds))
		local stats = {messages = 0, bytes = 0}
		local start = clock()
		local finish = start + seconds
		local done = spawn(phase.n, phase.f, stats, finish)
		progress(phase.name, stats, start, finish)
		while not done() do sock.sleep(0.05) end
		print(('%s done: %d messages, %.0f msg/s, %.1f MB/s'):format(phase.name,
			stats.messages, stats.messages / seconds, stats.bytes / seconds / 1e6))
	end
	listener:close()
end)

sock.start()
if errors > 0 then
	io.stderr:write(('demo: %d errors; the first: %s\n'):format(errors, first_error))
	os.exit(1)
end
