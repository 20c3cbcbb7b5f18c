-- echo_server.lua: a TCP echo server, one sock thread per connection.
--
--   LUA_CPATH='target/lua/?.so;;' luajit examples/lua/echo_server.lua [port] [host]
--
-- port defaults to 8090 (0: any free port), host to 127.0.0.1 ('*': all
-- interfaces). Prints where it listens, then serves until killed.
-- Try it with examples/lua/echo_client.lua, or `nc 127.0.0.1 8090`.
local sock = require'sock'
local ffi = require'ffi'

local port = tonumber(arg[1]) or 8090
local host = arg[2] or '127.0.0.1'

io.stdout:setvbuf'line' -- print at once, also into a pipe

local server = assert(sock.tcp())
assert(server:setopt('so_reuseaddr', true)) -- restart at once after a kill
local ok, err, code, msg = server:listen(host, port)
if not ok then
	io.stderr:write(('cannot listen on %s:%s: %s (%s)\n'):format(host, port, err, msg))
	os.exit(1)
end
print('echo server listening on ' .. tostring(server:getsockname()))

-- One connection: echo until the client closes (recv returns 0) or fails.
local function serve(c, remote)
	local buf = ffi.new('uint8_t[?]', 64 * 1024)
	local size = ffi.sizeof(buf)
	while true do
		local n, err = c:recv(buf, size)
		if not n then
			-- 'closed': the client closed its side, we are done; else a
			-- failure (connection_reset, ...)
			if err ~= 'closed' then print(('%s: %s'):format(tostring(remote), err)) end
			break
		end
		local ok, err = c:sendall(buf, n)
		if not ok then
			print(('%s: %s'):format(tostring(remote), err))
			break
		end
	end
	c:close()
end

sock.newthread(function()
	while true do
		local c, remote = server:accept()
		if c then
			sock.newthread(serve, c, remote) -- runs at once, returns when it blocks
		else
			-- e.g. too_many_open_files: the pending connection was refused;
			-- back off a little instead of spinning.
			io.stderr:write('accept: ', tostring(remote), '\n')
			sock.sleep(0.1)
		end
	end
end)

sock.start()
