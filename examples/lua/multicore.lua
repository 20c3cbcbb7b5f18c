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
	local HELLO_CLOSE = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n'
		.. 'Connection: close\r\n\r\nHello, world!'
	local BUF = 4096
	local served = 0

	-- Whether the header in buf[from, to) asks to close ("\nconnection:
	-- close", any case), looked for in the buffer (no string made).
	local CLOSE_HDR = '\nconnection: close'
	local close_hdr = ffi.new('uint8_t[?]', #CLOSE_HDR, CLOSE_HDR)
	local function wants_close(buf, from, to)
		for i = from, to - #CLOSE_HDR do
			if buf[i] == 10 then
				local k = 1
				while k < #CLOSE_HDR and bit.bor(buf[i + k], 0x20) == close_hdr[k] do k = k + 1 end
				if k == #CLOSE_HDR then return true end
			end
		end
		return false
	end

	-- Buffers are reused: a connection takes one from the free list and
	-- gives it back at its end (no new buffer, no garbage per connection).
	local free = {}
	local function serve(c)
		local buf = table.remove(free) or ffi.new('uint8_t[?]', BUF)
		local len = 0
		while true do
			local n = c:recv(buf + len, BUF - len)
			if not n then break end -- the client closed (nil, 'closed') or failed
			len = len + n
			local pos, answers, close = 0, 0, false
			while true do -- every complete request (pipelining)
				local p = ffi.C.memmem(buf + pos, len - pos, '\r\n\r\n', 4)
				if p == nil then break end
				local e = tonumber(ffi.cast('uint8_t*', p) - buf) + 4
				close = wants_close(buf, pos, e)
				pos = e
				answers = answers + 1
				if close then break end
			end
			if answers > 0 then
				local out = answers == 1 and HELLO or HELLO:rep(answers)
				if close then out = out:sub(1, -#HELLO - 1) .. HELLO_CLOSE end
				if not c:sendall(out) then break end
				served = served + answers
				if close then -- FIN first, then the client's FIN: no RST cuts the answer
					c:shutdown'w'
					repeat local k = c:recv(buf, BUF, sock.clock() + 5) until not k
					break
				end
			elseif len == BUF then
				break -- a header larger than the buffer
			end
			len = len - pos
			if len > 0 then ffi.copy(buf, buf + pos, len) end
		end
		c:close()
		free[#free + 1] = buf
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
