-- copas_server.lua: the benchmark's LuaSocket + copas server (what sock is
-- meant to replace), written the idiomatic way: copas.addserver, a coroutine
-- per connection, copas.receive / copas.receivePartial and copas.send, all
-- over socket.select().
--
--   luajit copas_server.lua ECHO_PORT HTTP_PORT
local socket = require'socket'
local copas = require'copas'
local common = dofile(arg[0]:gsub('[^/]*$', '') .. 'common.lua')

local BUF = common.BUF
local echo_port, http_port = common.ports()

local function echo(skt)
	skt:setoption('tcp-nodelay', true)
	while true do
		-- What is there, up to BUF bytes.
		local data, err, part = copas.receivePartial(skt, BUF)
		data = data or (part ~= '' and part)
		if data then
			if not copas.send(skt, data) then break end
		end
		if err and err ~= 'timeout' then break end
	end
	skt:close()
end

-- Lines up to the empty one: the request header, as LuaSocket reads it.
local function http(skt)
	skt:setoption('tcp-nodelay', true)
	local head, n = {}, 0
	while true do
		local line = copas.receive(skt, '*l')
		if not line then break end
		n = n + 1
		head[n] = line
		if line == '' then
			local close = common.wants_close(table.concat(head, '\n', 1, n))
			for i = 1, n do head[i] = nil end
			n = 0
			if not copas.send(skt, close and common.CLOSE or common.KEEP) then break end
			if close then break end
		end
	end
	skt:close()
end

-- socket.bind sets SO_REUSEADDR, binds and listens.
local function listen(port)
	return assert(socket.bind('127.0.0.1', port, common.BACKLOG))
end

copas.addserver(listen(echo_port), echo)
copas.addserver(listen(http_port), http)
copas.loop()
