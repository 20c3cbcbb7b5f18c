-- Several writers on one socket: each call's bytes contiguous on the stream,
-- served in the order the calls came, instead of 'busy'. Loopback only; every
-- wait is bounded by an expires.

local t = require'tap'
local ffi = require'ffi'
local sock = require'sock'
local u = require'util'

-- Writer `id`'s message: its id and length (8 hex digits each), then `len`
-- bytes of its own character.
local function message(id, len)
	return ('%08x%08x'):format(id, len) .. string.rep(string.char(33 + id), len)
end

-- The ids of the messages of a stream, in stream order, each checked whole
-- and its own.
local function messages(s)
	local ids, at = {}, 1
	while at <= #s do
		local id = tonumber(s:sub(at, at + 7), 16)
		local len = tonumber(s:sub(at + 8, at + 15), 16)
		assert(id and len, 'a header at byte ' .. at)
		local body = s:sub(at + 16, at + 15 + len)
		assert(#body == len, ('message %d cut at the end'):format(id))
		local foreign = body:find('[^' .. string.char(33 + id):gsub('%p', '%%%0') .. ']')
		assert(not foreign, ('message %d has foreign bytes from byte %s'):format(id, foreign))
		ids[#ids + 1] = id
		at = at + 16 + len
	end
	return ids
end

-- Reads until the end of the stream, `pause` seconds between reads of at
-- most 8 KiB: a slow reader.
local function read_slowly(a, pause)
	local parts, buf = {}, ffi.new'char[8192]'
	while true do
		local n, err = a:recv(buf, 8192, u.exp(20))
		if not n then
			t.eq(err, 'closed', 'the end of the stream')
			return table.concat(parts)
		end
		parts[#parts + 1] = ffi.string(buf, n)
		sock.sleep(pause)
	end
end

t.test('50 threads sendall to one slow reader: whole messages, in order of arrival', function()
	local W = 50
	local arrivals, results, got = {}, {}, nil
	u.run(30, function()
		local c, a = u.pair()
		assert(c:setopt('so_sndbuf', 16 * 1024))
		assert(a:setopt('so_rcvbuf', 128 * 1024))
		local done = 0
		for id = 0, W - 1 do
			sock.newthread(function()
				-- Staggered: some come while the turn is free, most while
				-- another writer has it.
				sock.sleep((id % 10) * 0.002)
				local len = 4096 + math.floor(id * 60 * 1024 / (W - 1))
				local m = message(id, len)
				arrivals[#arrivals + 1] = id
				results[id] = {c:sendall(m, nil, u.exp(20))}
				done = done + 1
			end)
		end
		sock.newthread(function()
			got = read_slowly(a, 0.001)
			a:close()
		end)
		while done < W do sock.sleep(0.01) end
		c:close()
	end)
	for id = 0, W - 1 do
		t.eq(results[id][1], true, ('writer %d: %s'):format(id, tostring(results[id][2])))
	end
	local ids = messages(got)
	t.eq(#ids, W)
	t.eq(table.concat(ids, ','), table.concat(arrivals, ','), 'served in the order of arrival')
	t.ok(ids[2] ~= 1 or ids[3] ~= 2 or ids[11] ~= 10, 'the arrivals were staggered')
end)

t.test("a queued writer's deadline: nil, 'timeout', the socket closed (the seed's rule): the others get 'closed'", function()
	local res = {}
	u.run(10, function()
		local c, a = u.pair()
		assert(c:setopt('so_sndbuf', 16 * 1024))
		local big = ffi.new('char[?]', 64 * 1024 * 1024)
		sock.newthread(function() res.first = {c:sendall(big, nil, u.exp(5))} end)
		sock.newthread(function() res.second = {c:sendall('x', nil, u.exp(0.1))} end)
		sock.newthread(function() res.third = {c:send('y', nil, u.exp(5))} end)
		local t0 = sock.clock()
		while not res.third do sock.sleep(0.01) end
		res.took = sock.clock() - t0
		a:close()
	end)
	t.eq(res.second[2], 'timeout')
	t.eq(res.second[5], 0, 'the queued writer sent nothing')
	t.eq(res.first[2], 'closed')
	t.ok(res.first[5] > 0, 'the first writer sent part of its buffer')
	t.eq(res.third[2], 'closed')
	t.ok(res.took < 1, 'woken at the deadline, not at their own')
end)
