-- server.lua: the scale tests' server (scripts/scale.sh): a line echo, a
-- sock thread per connection parked in readline; a request "close" is
-- answered and then the server closes first. Prints its port, then serves
-- until killed.
local sock = require'sock'
local s = assert(sock.tcp())
assert(s:setopt('so_reuseaddr', true))
assert(s:listen(4096, '127.0.0.1', 0))
io.stdout:write(s:getsockname():port(), '\n')
io.stdout:flush()

local function serve(c)
	while true do
		local line = c:readline()
		if not line then break end
		if not c:sendall(line .. '\n') then break end
		if line == 'close' then break end
	end
	c:close()
end

sock.newthread(function()
	while true do
		local c, err = s:accept()
		if c then
			sock.newthread(serve, c)
		else
			io.stderr:write('accept: ', tostring(err), '\n')
			sock.sleep(0.01)
		end
	end
end)
sock.start()
