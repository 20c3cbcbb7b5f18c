-- The chat server of examples/lua/chat.lua: 20 clients, each sending 50
-- lines while every other client's lines come in; every client receives
-- every other client's lines, whole and in each sender's order, with no
-- 'busy' (the senders' threads write to one socket at a time).

local t = require'tap'
local sock = require'sock'
local u = require'util'

local dir = (arg and arg[0] or ''):match('^(.*)[/\\]') or '.'
local serve = assert(loadfile(dir .. '/../../../examples/lua/chat.lua'))('module')

t.test('chat: 20 clients, 50 lines each, every line to every other client', function()
	local N, M = 20, 50
	local l = assert(sock.tcp())
	assert(l:listen('127.0.0.1', 0))
	local port = l:getsockname():port()
	local clients = serve(l)
	local got, joined, done = {}, 0, 0
	local threads = {}
	for i = 1, N do
		threads[i] = function()
			local c = assert(sock.tcp())
			assert(c:connect('127.0.0.1', port, sock.clock() + 5))
			assert(c:readline(nil, false, sock.clock() + 5) == 'name?')
			assert(c:sendall('c' .. i .. '\n'))
			joined = joined + 1
			while joined < N do sock.sleep(0.005) end -- everyone is in
			sock.newthread(function()
				for k = 1, M do
					assert(c:sendall(('line %d of c%d %s\n'):format(k, i, ('.'):rep(k * 100))))
				end
			end)
			sock.sleep(0.3) -- late to read: the server's sends to this client wait
			-- Read the others' lines (and ignore the join/leave notices).
			local seen, want = {}, (N - 1) * M
			local n = 0
			while n < want do
				local line = assert(c:readline(8192, false, sock.clock() + 20))
				local sender, k, from = line:match'^(c%d+): line (%d+) of (c%d+) '
				if sender then
					assert(sender == from, line)
					k = tonumber(k)
					assert(k == (seen[from] or 0) + 1, 'out of order: ' .. line)
					assert(line:sub(-k * 100) == ('.'):rep(k * 100), 'cut: ' .. line)
					seen[from] = k
					n = n + 1
					-- Slow: the server's sends to this client fill its
					-- buffers, so broadcasts wait, several at once.
					if n % 100 == 0 then sock.sleep(0.02) end
				end
			end
			got[i] = n
			done = done + 1
			while done < N do sock.sleep(0.005) end
			assert(c:sendall('/quit\n'))
			c:close()
		end
	end
	threads[N + 1] = function()
		while done < N do sock.sleep(0.01) end
		sock.sleep(0.05)
		l:close()
	end
	u.run(60, unpack(threads))
	for i = 1, N do t.eq(got[i], (N - 1) * M, 'client ' .. i) end
	t.eq(next(clients), nil, 'everyone left')
end)
