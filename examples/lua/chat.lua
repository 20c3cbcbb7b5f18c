-- chat.lua: a line chat server: every line a client sends goes to every
-- other client, prefixed with its sender's name. It shows the buffered
-- reader (tcp:readline) and broadcast: the thread of the sender writes to
-- every other client, so several threads write to one socket at a time,
-- each line whole.
--
--   LUA_CPATH='target/lua/?.so;;' luajit examples/lua/chat.lua [port] [host]
--
-- port defaults to 8091 (0: any free port), host to 127.0.0.1. Prints
-- where it listens, then serves until killed. Try it with two or more
-- `nc 127.0.0.1 8091`: the first line a client sends is its name (`/quit`
-- leaves). Loaded with `loadfile(path)('module')` it returns serve(listener)
-- instead (the test suite runs it so).
local sock = require'sock'

local MAX_LINE = 8192 -- a longer line is refused (and the client dropped)
local SEND_TIME = 5   -- a client that does not read its lines for that long is dropped

local function serve(server)
	local clients = {} -- socket -> name

	-- One line to everyone but `from`; a client that cannot take it in
	-- time is dropped (a passed deadline closes its socket).
	local function broadcast(from, line)
		for c in pairs(clients) do
			if c ~= from and not c:sendall(line, nil, sock.clock() + SEND_TIME) then
				clients[c] = nil
			end
		end
	end

	local function session(c)
		assert(c:setopt('tcp_nodelay', true))
		-- A small kernel send buffer per client keeps the memory of many
		-- clients bounded; the lines for a slow one wait in the senders'
		-- threads, in turn.
		assert(c:setopt('so_sndbuf', 16384))
		assert(c:sendall('name?\n'))
		local name = c:readline(64)
		if name and #name > 0 then
			clients[c] = name
			broadcast(c, '* ' .. name .. ' joined\n')
			while true do
				local line, err = c:readline(MAX_LINE)
				if not line or line == '/quit' then break end
				if clients[c] then broadcast(c, name .. ': ' .. line .. '\n') end
			end
			clients[c] = nil
			broadcast(c, '* ' .. name .. ' left\n')
		end
		c:close()
	end

	sock.newthread(function()
		while true do
			local c = server:accept()
			if not c then break end -- the listener was closed
			sock.newthread(session, c)
		end
	end)
	return clients
end

if ... == 'module' then return serve end

local port = tonumber(arg[1]) or 8091
local host = arg[2] or '127.0.0.1'
io.stdout:setvbuf'line'
local server = assert(sock.tcp())
assert(server:setopt('so_reuseaddr', true))
local ok, err, code, msg = server:listen(host, port)
if not ok then
	io.stderr:write(('cannot listen on %s:%s: %s (%s)\n'):format(host, port, err, msg))
	os.exit(1)
end
print('chat server listening on ' .. tostring(server:getsockname()))
serve(server)
sock.start()
