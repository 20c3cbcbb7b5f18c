-- Buffered reads: tcp:readline, readuntil, readn, readsome (strings, or
-- into cdata), lines split across packets, a line over its maximum, a
-- deadline mid-line, 8 MiB by lines, and the pool: idle connections hold
-- no buffer, every buffer goes back.

local t = require'tap'
local sock = require'sock'
local ffi = require'ffi'
local u = require'util'

-- A connected pair (inside a thread): client, server.
local function pair()
	local l = assert(sock.tcp())
	assert(l:listen('127.0.0.1', 0))
	local c = assert(sock.tcp())
	assert(c:connect('127.0.0.1', l:getsockname():port(), sock.clock() + 5))
	local s = assert(l:accept(sock.clock() + 5))
	l:close()
	return c, s
end

t.test('lines one byte per packet; the end kept or dropped; a last line without its end', function()
	local lines = {}
	u.run(10, function()
		local c, s = pair()
		assert(c:setopt('tcp_nodelay', true))
		sock.newthread(function()
			local text = 'first line\r\nsecond\n\nlast, without its end'
			for i = 1, #text do
				assert(c:sendall(text:sub(i, i)))
				sock.sleep(0.0005)
			end
			c:close()
		end)
		lines[1] = assert(s:readline(nil, true, sock.clock() + 5))
		while true do
			local line, err = s:readline(100, false, sock.clock() + 5)
			if not line then lines.err = err; break end
			lines[#lines + 1] = line
		end
		s:close()
	end)
	t.eq(lines[1], 'first line\r\n')
	t.eq(lines[2], 'second'); t.eq(lines[3], ''); t.eq(lines[4], 'last, without its end')
	t.eq(#lines, 4); t.eq(lines.err, 'closed')
end)

t.test('over the maximum: message_too_big, the bytes stay readable; readuntil, readn, readsome, into cdata', function()
	local r = {}
	u.run(10, function()
		local c, s = pair()
		assert(c:sendall('0123456789abcdef\nnext\r\nA--B--tail'))
		r.too = {s:readline(8, false, sock.clock() + 5)}
		local buf = ffi.new'uint8_t[4]'
		assert(s:recvn(buf, 4, sock.clock() + 5)) -- recvn takes buffered bytes first
		r.four = ffi.string(buf, 4)
		r.rest = s:readline(64, false, sock.clock() + 5)
		local lb = ffi.new'uint8_t[16]'
		local n = s:readline(lb, 16, false, sock.clock() + 5)
		r.into = ffi.string(lb, n)
		r.a = s:readuntil('--', nil, false, sock.clock() + 5)
		r.b = s:readuntil('--', 10, true, sock.clock() + 5)
		r.n = s:readn(2, sock.clock() + 5)
		r.some = s:readsome(10, sock.clock() + 5)
		c:close()
		r.after = {s:readsome(10, sock.clock() + 5)}
		s:close()
	end)
	t.eq(r.too[1], nil); t.eq(r.too[2], 'message_too_big')
	t.eq(r.four, '0123'); t.eq(r.rest, '456789abcdef')
	t.eq(r.into, 'next')
	t.eq(r.a, 'A'); t.eq(r.b, 'B--'); t.eq(r.n, 'ta'); t.eq(r.some, 'il')
	t.eq(r.after[1], nil); t.eq(r.after[2], 'closed')
	t.raises("delim", function() r.s = assert(sock.tcp()); r.s:readuntil('') end)
	r.s:close()
end)

t.test('a deadline mid-line: timeout, and the socket is closed (the seed)', function()
	local r = {}
	u.run(10, function()
		local c, s = pair()
		assert(c:sendall('half a '))
		local t0 = sock.clock()
		r.res = {s:readline(100, false, sock.clock() + 0.1)}
		r.took = sock.clock() - t0
		r.closed = s:closed()
		c:close()
	end)
	t.eq(r.res[2], 'timeout')
	t.ok(r.took >= 0.1 and r.took < 1, r.took)
	t.eq(r.closed, true)
	t.eq((sock.read_buffers()), 0, 'the closed socket gave its buffer back')
end)

t.test('8 MiB by lines', function()
	local count, bytes, sent = 0, 0, 0
	u.run(60, function()
		local c, s = pair()
		sock.newthread(function()
			local parts, i, size = {}, 0, 0
			while size < 8 * 1024 * 1024 do
				local line = 'line ' .. i .. ' ' .. ('x'):rep(i % 200) .. '\n'
				parts[#parts + 1] = line
				size = size + #line
				i = i + 1
			end
			local data = table.concat(parts)
			sent = i
			assert(c:sendall(data, nil, sock.clock() + 30))
			c:close()
		end)
		while true do
			local line, err = s:readline(4096, false, sock.clock() + 30)
			if not line then assert(err == 'closed', err); break end
			assert(line == 'line ' .. count .. ' ' .. ('x'):rep(count % 200), line)
			count = count + 1
			bytes = bytes + #line + 1
		end
		s:close()
	end)
	t.eq(count, sent)
	t.ok(bytes >= 8 * 1024 * 1024, bytes)
end)

t.test('1,000 idle connections waiting for a line hold no buffer; every buffer goes back', function()
	local N = 1000
	local r = {}
	u.run(60, function()
		local l = assert(sock.tcp())
		assert(l:listen('127.0.0.1', 0))
		local port = l:getsockname():port()
		local clients, idle, done = {}, 0, 0
		for i = 1, N do
			local c = assert(sock.tcp())
			assert(c:connect('127.0.0.1', port, sock.clock() + 5))
			assert(c:sendall('hello\nhal'))
			clients[i] = c
			local s = assert(l:accept(sock.clock() + 5))
			sock.newthread(function()
				assert(s:readline() == 'hello')
				assert(s:readn(3) == 'hal')
				idle = idle + 1
				local line, err = s:readline(64, false, sock.clock() + 30)
				assert(not line and err == 'closed', tostring(err))
				s:close()
				done = done + 1
			end)
		end
		while idle < N do sock.sleep(0.01) end
		r.idle_in_use = sock.read_buffers()
		for i = 1, N do clients[i]:close() end
		while done < N do sock.sleep(0.01) end
		r.in_use, r.pooled = sock.read_buffers()
		l:close()
	end)
	t.eq(r.idle_in_use, 0, 'idle connections hold no buffer')
	t.eq(r.in_use, 0)
	t.ok(r.pooled <= 256, 'the pool is bounded: ' .. tostring(r.pooled))
end)
