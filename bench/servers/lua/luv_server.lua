-- luv_server.lua: the benchmark's luv (libuv) server, written the idiomatic
-- way: callbacks, read_start and write; libuv gives each read a fresh string.
--
--   luajit luv_server.lua ECHO_PORT HTTP_PORT
local uv = require'luv'
local common = dofile(arg[0]:gsub('[^/]*$', '') .. 'common.lua')

local echo_port, http_port = common.ports()

local function close(c)
	if not c:is_closing() then c:close() end
end

local function echo(c)
	c:read_start(function(err, data)
		if err or not data then return close(c) end
		c:write(data)
	end)
end

local function http(c)
	local pending = '' -- the start of a request that came in pieces
	c:read_start(function(err, data)
		if err or not data then return close(c) end
		if pending ~= '' then data = pending .. data end
		local out, used, closing = common.answer(data)
		if out then
			if closing then
				c:write(out, function() close(c) end)
				return c:read_stop()
			end
			c:write(out)
		end
		pending = used < #data and data:sub(used + 1) or ''
		if #pending >= common.BUF then close(c) end
	end)
end

local function serve(port, handler)
	local s = uv.new_tcp()
	assert(s:bind('127.0.0.1', port)) -- libuv sets SO_REUSEADDR
	assert(s:listen(common.BACKLOG, function(err)
		if err then return io.stderr:write('listen: ', err, '\n') end
		local c = uv.new_tcp()
		if s:accept(c) then
			c:nodelay(true)
			handler(c)
		else
			c:close()
		end
	end))
end

serve(echo_port, echo)
serve(http_port, http)
uv.run()
