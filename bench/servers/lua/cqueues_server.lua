-- cqueues_server.lua: the benchmark's cqueues server, written the idiomatic
-- way: a coroutine per connection (cq:wrap), cqueues.socket with its own
-- buffering (binary mode, output not buffered), read(-n) = what is there.
--
--   luajit cqueues_server.lua ECHO_PORT HTTP_PORT
local cqueues = require'cqueues'
local socket = require'cqueues.socket'
local common = dofile(arg[0]:gsub('[^/]*$', '') .. 'common.lua')

local BUF = common.BUF
local echo_port, http_port = common.ports()
local cq = cqueues.new()

-- Errors as return values (the default handler raises them).
local function returnerr(_, _, why) return why end

local function echo(c)
	c:onerror(returnerr)
	c:setmode('b', 'bn')
	while true do
		local data = c:read(-BUF)
		if not data then break end
		if not c:write(data) then break end
	end
	c:close()
end

-- Lines up to the empty one: the request header, as cqueues reads it.
local function http(c)
	c:onerror(returnerr)
	c:setmode('b', 'bn')
	local head, n = {}, 0
	for line in c:lines('*L') do
		n = n + 1
		head[n] = line
		if line == '\r\n' or line == '\n' then
			local close = common.wants_close(table.concat(head, '', 1, n))
			for i = 1, n do head[i] = nil end
			n = 0
			if not c:write(close and common.CLOSE or common.KEEP) then break end
			if close then break end
		end
	end
	c:close()
end

local function serve(port, handler)
	local s = assert(socket.listen{host = '127.0.0.1', port = port, reuseaddr = true,
		backlog = common.BACKLOG, nodelay = true})
	assert(s:listen())
	cq:wrap(function()
		for c in s:clients() do
			cq:wrap(handler, c)
		end
	end)
end

serve(echo_port, echo)
serve(http_port, http)
-- A connection's error (a reset at the end of a run) ends its coroutine and
-- stops the loop with that error: report it and go on.
while true do
	local ok, err = cq:loop()
	if ok then break end
	io.stderr:write('cqueues: ', tostring(err), '\n')
end
