-- client.lua: the scale tests' clients (scripts/scale.sh).
--
--   luajit client.lua conns N PORT          N connections open at once, a line
--                                           echoed on each, then all closed
--   luajit client.lua cycles N PORT PID     N connect/request/close cycles, 64
--                                           at a time; the server's (PID)
--                                           descriptors and resident memory
--                                           stay flat after the first tenth
--   luajit client.lua deadlines N           N threads sleeping to N distinct
--                                           times fire in order, none early
--
-- Prints one line of figures; exits non-zero (with the reason) on a failure.
local sock = require'sock'
local mode, n, port, pid = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4]

local function fail(msg)
	io.stderr:write('client.lua ', mode, ': ', msg, '\n')
	os.exit(1)
end

local function fds(p)
	local ls = io.popen('ls /proc/' .. p .. '/fd | wc -l')
	local k = tonumber(ls:read('*a'))
	ls:close()
	return k
end

local function rss(p)
	local f = io.open('/proc/' .. p .. '/statm')
	local pages = f:read('*n'); pages = f:read('*n')
	f:close()
	return pages * 4096
end

local function exchange(i, close)
	local c, err = sock.tcp()
	if not c then return nil, err end
	local ok, e = c:connect('127.0.0.1', port, sock.clock() + 20)
	if not ok then c:close(); return nil, 'connect: ' .. tostring(e) end
	local req = close and 'close' or ('hello ' .. i)
	ok, e = c:sendall(req .. '\n', nil, sock.clock() + 20)
	if not ok then return nil, 'send: ' .. tostring(e) end
	local line, e2 = c:readline(nil, false, sock.clock() + 20)
	if line ~= req then return nil, 'reply: ' .. tostring(line) .. ' ' .. tostring(e2) end
	if close then
		local more, e3 = c:readline(nil, false, sock.clock() + 20)
		if more or e3 ~= 'closed' then return nil, 'end: ' .. tostring(e3) end
		c:close()
	end
	return c
end

if mode == 'conns' then
	local open, done, failed, conns = 0, 0, nil, {}
	local t0 = sock.clock()
	for i = 1, n do
		sock.newthread(function()
			local c, err = exchange(i)
			if not c then failed = failed or err; done = done + 1; return end
			conns[i] = c
			open = open + 1
			done = done + 1
		end)
		if i % 500 == 0 then sock.sleep(0.01) end -- the accept queue catches up
	end
	sock.newthread(function()
		while done < n do sock.sleep(0.01) end
	end)
	sock.start()
	if failed then fail(failed) end
	if open ~= n then fail(('%d of %d connections open'):format(open, n)) end
	for i = 1, n do conns[i]:close() end
	print(('conns: %d open at once, a line echoed on each, in %.1f s'):format(open, sock.clock() - t0))
elseif mode == 'cycles' then
	local W = 64
	local next_i, done, failed = 0, 0, nil
	local tenth = math.max(1, math.floor(n / 10))
	local fd10, rss10
	local t0 = sock.clock()
	for _ = 1, W do
		sock.newthread(function()
			while not failed and next_i < n do
				next_i = next_i + 1
				local ok, err = exchange(next_i, true)
				if not ok then failed = failed or err; return end
				done = done + 1
				if done == tenth then
					sock.sleep(0.2)
					fd10, rss10 = fds(pid), rss(pid)
				end
			end
		end)
	end
	sock.start()
	if failed then fail(failed) end
	if done ~= n then fail(('%d of %d cycles'):format(done, n)) end
	sock.sleep(0.5)
	local fd1, rss1 = fds(pid), rss(pid)
	print(('cycles: %d in %.1f s; server descriptors %d after the first tenth, %d at the end; '
		.. 'resident %.1f MB, %.1f MB'):format(n, sock.clock() - t0, fd10, fd1, rss10 / 2^20, rss1 / 2^20))
	if fd1 > fd10 + 2 then fail('the server\'s descriptors grew') end
	if rss1 > rss10 + 4 * 2^20 then fail('the server\'s resident memory grew') end
elseif mode == 'deadlines' then
	local t0 = sock.clock() + 0.5
	local fired, last, early = 0, -1, 0
	local x = 12345
	for i = 1, n do
		x = (x * 1103515245 + 12345) % 2147483648
		local at = t0 + (x % 1000000) / 1000000 -- within a second
		sock.newthread(function()
			sock.sleep_until(at)
			if sock.clock() < at then early = early + 1 end
			if at < last then fail(('a deadline fired out of order: %.6f after %.6f'):format(at, last)) end
			last = at
			fired = fired + 1
		end)
	end
	sock.start()
	if fired ~= n then fail(('%d of %d deadlines fired'):format(fired, n)) end
	if early > 0 then fail(early .. ' threads woke early') end
	print(('deadlines: %d fired in order, none early, in %.1f s'):format(n, sock.clock() - t0 + 0.5))
else
	fail('unknown mode (conns, cycles, deadlines)')
end
