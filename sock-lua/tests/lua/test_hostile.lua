-- Hostile arguments: every method of every kind of socket object, of the
-- Rust userdata behind it (`_s`, which every socket object carries), of the
-- address objects and every function of the module, called with values a
-- program may pass by mistake or by malice (numbers where buffers go, NULL
-- pointers, lengths past a buffer's end, strings, tables, other objects as
-- `self`). Each call returns or raises a Lua error; none crashes, none
-- hangs, and no number ever reaches the module as an address.

local t = require'tap'
local sock = require'sock'
local ffi = require'ffi'

-- The hostile values, by index (nil among them: a table with holes).
local function hostile()
	local sa = sock.addr('127.0.0.1', 9)
	local v = {
		true, false, 0, -1, 1, 4, 12345, 2^31, 2^53, -2^63, 0/0, math.huge, 0.5,
		'', '\0', ('z'):rep(70000), '127.0.0.1', {}, {1, 2}, function() end,
		coroutine.create(print), ffi.new('char[4]'), ffi.cast('char *', nil),
		ffi.cast('void *', 0), ffi.new('int[1]'), ffi.new('uint8_t[?]', 1),
		newproxy(true), sa, sa.addr, sock.tcp(), sock.udp(),
	}
	v.n = #v + 1 -- and nil, at v[v.n]
	return v
end

-- The second arguments, with each hostile first one.
local SECOND = {n = 5, [1] = 4, [2] = 12345, [3] = '127.0.0.1', [4] = 0/0}

-- The names of a class's methods, up its chain of __index tables.
local function methods_of(class)
	local names, seen = {}, {}
	while type(class) == 'table' do
		for k, v in pairs(class) do
			if type(v) == 'function' and not seen[k] then
				seen[k] = true
				names[#names + 1] = k
			end
		end
		local mt = getmetatable(class)
		class = mt and mt.__index
	end
	table.sort(names)
	return names
end

-- Calls f with every hostile value as its first argument after `self`
-- (and with a few second arguments), each call in its own sock thread so
-- that a call that blocks parks instead of holding up the test; returns
-- how many calls were made.
local function pound(f, self, values)
	local calls = 0
	for i = 1, values.n do
		for j = 1, SECOND.n do
			calls = calls + 1
			local a, b = values[i], SECOND[j]
			sock.newthread(function()
				pcall(f, self, a, b, 0.05)
			end)
		end
	end
	return calls
end

-- Lets the parked calls end: their objects closed, the loop run dry.
local function settle(objects)
	sock.start(0.3)
	for _, o in ipairs(objects) do pcall(o.close, o) end
	sock.start(5)
end

t.test('the userdata behind a socket has no method that takes a buffer', function()
	local s = assert(sock.udp())
	local index = debug.getmetatable(s._s).__index
	for _, name in ipairs{'sendto', 'recvnext', 'read_until', 'send', 'recv',
			'try_recvnext', 'try_recv', 'try_send'} do
		t.eq(index[name], nil, name)
	end
	-- A number as a buffer, through the public API: refused.
	t.raises('buf', s.recvnext, s, 12345, 16)
	t.raises('buf', s.sendto, s, '127.0.0.1', 9, 12345, 16)
	s:close()
end)

t.test('every socket method with hostile arguments: errors, no crash', function()
	local values = hostile()
	local kinds = {tcp = sock.tcp, udp = sock.udp}
	local calls, objects = 0, {}
	for kind, make in pairs(kinds) do
		local class = getmetatable(make()).__index
		for _, name in ipairs(methods_of(class)) do
			if name ~= 'close' then
				local s = assert(make())
				objects[#objects + 1] = s
				calls = calls + pound(class[name], s, values)
				-- The wrong self: a table, another object, a number.
				for _, self in ipairs{{}, values[28], 7} do
					calls = calls + 1
					t.ok(not pcall(class[name], self, 4), kind .. ':' .. name .. ' on a wrong self')
				end
			end
		end
	end
	for i = 1, values.n do
		if type(values[i]) == 'table' and values[i].close then objects[#objects + 1] = values[i] end
	end
	settle(objects)
	t.ok(calls > 1000, calls .. ' calls')
end)

t.test('every method of the Rust userdata with hostile arguments: errors, no crash', function()
	local values = hostile()
	local calls, objects = 0, {}
	for _, make in ipairs{sock.tcp, sock.udp} do
		local probe = make()
		local index = debug.getmetatable(probe._s).__index
		probe:close()
		local names = {}
		for name in pairs(index) do names[#names + 1] = name end
		table.sort(names)
		for _, name in ipairs(names) do
			if name ~= 'close' then
				local s = assert(make())
				objects[#objects + 1] = s
				calls = calls + pound(index[name], s._s, values)
				-- Another userdata as self (an address), a table, a number.
				for _, self in ipairs{values[28], {}, 12345} do
					calls = calls + 1
					t.ok(not pcall(index[name], self, 4), name .. ' on a wrong self')
				end
			end
		end
	end
	for i = 1, values.n do
		if type(values[i]) == 'table' and values[i].close then objects[#objects + 1] = values[i] end
	end
	settle(objects)
	t.ok(calls > 1000, calls .. ' calls')
end)

t.test('the module functions and the address methods with hostile arguments', function()
	local values = hostile()
	-- Not these: they drive or stop the loop the test runs on, change it
	-- (its poller, the error handler, the lookups' test delay), wait on the
	-- OS thread (outside threads, sock.addr blocks on a lookup), or park a
	-- thread for as long as they are told (a sleep of 2^53 s).
	local skip = {start = true, stop = true, poll = true, run = true, runat = true,
		runafter = true, runevery = true, osthread = true, addr = true, transfer = true,
		onerror = true, sleep_job = true, epoll_fd = true, iocp = true,
		_lookup_delay = true, sleep = true, sleep_until = true, suspend = true}
	local calls = 0
	local names = {}
	for name, f in pairs(sock) do
		if type(f) == 'function' and not skip[name] then names[#names + 1] = name end
	end
	table.sort(names)
	for _, name in ipairs(names) do
		for i = 1, values.n do
			calls = calls + 1
			local a = values[i]
			sock.newthread(function() pcall(sock[name], a, 4, 0.05) end)
		end
	end
	local sa = sock.addr('127.0.0.1', 9)
	for _, obj in ipairs{sa, sa.addr} do
		for _, name in ipairs{'next', 'addr', 'family', 'socktype', 'protocol', 'tostring',
				'port', 'ip', 'name', 'type', 'free', 'canonname'} do
			local ok, f = pcall(function() return obj[name] end)
			if ok and type(f) == 'function' then
				for i = 1, values.n do
					calls = calls + 1
					pcall(f, obj, values[i])
					pcall(f, values[i], obj)
				end
			end
		end
	end
	local objects = {}
	for i = 1, values.n do
		if type(values[i]) == 'table' and values[i].close then objects[#objects + 1] = values[i] end
	end
	settle(objects)
	t.ok(calls > 500, calls .. ' calls')
end)
