-- multicore.lua: an HTTP/1.1 "Hello, world!" server on every core: N worker
-- OS threads (sock.osthread), each a Lua state with its own listener on the
-- same port (so_reuseport: the kernel spreads the connections), a sock thread
-- per connection; the workers' loops share this state's poller.
--
--   LUA_CPATH='target/lua/?.so;;' luajit examples/lua/multicore.lua [workers] [port] [seconds]
--   wrk -t2 -c64 -d5s http://127.0.0.1:8080/
--
-- workers defaults to 2, port to 8080, seconds to 0 (serve until killed).
-- Each worker returns the requests it answered; the total is printed at the
-- end.
local sock = require'sock'

local workers = tonumber(arg[1]) or 2
local port = tonumber(arg[2]) or 8080
local seconds = tonumber(arg[3]) or 0

-- One worker, in its own OS thread and Lua state: everything it uses is
-- local to it (a function that crosses to another state has no upvalues).
local function worker(n, port, seconds)
	local sock = require'sock'
	local ffi = require'ffi'
	ffi.cdef'void *memmem(const void *h, size_t hl, const void *n, size_t nl);'
	local HELLO = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!'
	local BUF = 4096
	local served = 0

	local function serve(c)
		local buf = ffi.new('uint8_t[?]', BUF)
		local len = 0
		while true do
			local n = c:recv(buf + len, BUF - len)
			if not n or n == 0 then break end
			len = len + n
			local pos, answers = 0, 0
			while true do -- every complete request (pipelining)
				local p = ffi.C.memmem(buf + pos, len - pos, '\r\n\r\n', 4)
				if p == nil then break end
				pos = tonumber(ffi.cast('uint8_t*', p) - buf) + 4
				answers = answers + 1
			end
			if answers > 0 then
				if not c:sendall(answers == 1 and HELLO or HELLO:rep(answers)) then break end
				served = served + answers
			elseif len == BUF then
				break -- a header larger than the buffer
			end
			len = len - pos
			if len > 0 then ffi.copy(buf, buf + pos, len) end
		end
		c:close()
	end

	local l = assert(sock.tcp())
	assert(l:setopt('so_reuseaddr', true))
	assert(l:setopt('so_reuseport', true))
	assert(l:listen(1024, '127.0.0.1', port))
	sock.newthread(function()
		while true do
			local c, err = l:accept()
			if c then
				c:setopt('tcp_nodelay', true)
				sock.newthread(serve, c)
			else
				io.stderr:write('worker ', n, ': accept: ', tostring(err), '\n')
				sock.sleep(0.1)
			end
		end
	end)
	if seconds > 0 then
		sock.newthread(function() sock.sleep(seconds); sock.stop() end)
	end
	sock.start()
	return served
end

print(('multicore: %d workers on http://127.0.0.1:%d/'):format(workers, port))
local threads = {}
for n = 1, workers do threads[n] = sock.osthread(worker, n, port, seconds) end
local total = 0
for n, t in ipairs(threads) do
	local ok, served = t:join()
	if not ok then error('worker ' .. n .. ' failed: ' .. tostring(served)) end
	print(('worker %d: %d requests'):format(n, served))
	total = total + served
end
print(('total: %d requests'):format(total))
