-- lines.lua: a line iterator over a socket, written with coroutine.wrap, used
-- in a plain for loop inside a sock thread while another thread writes lines.
--
--   LUA_CPATH='target/lua/?.so;;' luajit examples/lua/lines.lua
--
-- Inside sock threads, coroutine.wrap (and coroutine.resume) let the wrapped
-- function do socket I/O: when it waits for data, the whole sock thread waits
-- (the others run) and the for loop just sees the next line when it is there.
-- (sock.cowrap is the same thing, and also works outside sock threads.)
local sock = require'sock'
local ffi = require'ffi'
local C = ffi.C

ffi.cdef[[
void *memchr(const void *s, int c, size_t n);
void *memmove(void *dest, const void *src, size_t n);
]]

-- A line reader on socket s: r:lines() iterates over the lines (without their
-- "\n"); the iteration ends at the end of the stream (a last line without "\n"
-- is still given) or on an error, which is then in r.err.
local function reader(s, bufsize)
	bufsize = bufsize or 4096
	local r = {}
	function r:lines()
		return coroutine.wrap(function()
			local buf = ffi.new('char[?]', bufsize)
			local len = 0 -- bytes in buf that are not a whole line yet
			while true do
				local n, err = s:recv(buf + len, bufsize - len) -- waits (I/O in the iterator)
				if not n then
					if err ~= 'closed' then r.err = err return end
					-- the end of the stream (the peer's FIN): the last line
					if len > 0 then coroutine.yield(ffi.string(buf, len)) end
					return
				end
				local from, to = 0, len + n -- the lines are in buf[from, to)
				while true do
					local nl = C.memchr(buf + from, 10, to - from) -- find "\n"
					if nl == nil then break end
					local i = tonumber(ffi.cast('char*', nl) - buf)
					coroutine.yield(ffi.string(buf + from, i - from))
					from = i + 1
				end
				len = to - from -- keep the start of the next line
				if len > 0 and from > 0 then C.memmove(buf, buf + from, len) end
				if len == bufsize then r.err = 'line_too_long' return end
			end
		end)
	end
	return r
end

local server = assert(sock.tcp())
assert(server:listen('127.0.0.1', 0))
local addr = server:getsockname()
local t0 = sock.clock()
local function log(who, fmt, ...)
	print(('%5.0f ms  %-6s ' .. fmt):format((sock.clock() - t0) * 1000, who, ...))
end

-- The reading thread: a for loop over the lines of its connection.
sock.newthread(function()
	local c = assert(server:accept())
	server:close()
	local r = reader(c)
	local count = 0
	for line in r:lines() do
		count = count + 1
		log('reader', 'line %d: "%s"', count, line)
	end
	log('reader', '%d lines, then %s', count, r.err or 'end of stream')
	c:close()
end)

-- The writing thread: lines cut at odd places, sent a piece at a time.
sock.newthread(function()
	local c = assert(sock.tcp())
	assert(c:connect(addr))
	local pieces = {
		'first line\nsecond ', 'line\n', 'third line\nfour', 'th line\nfifth ',
		'and last line, without a newline',
	}
	for _, piece in ipairs(pieces) do
		sock.sleep(0.05)
		log('writer', 'sends "%s"', (piece:gsub('\n', '\\n')))
		assert(c:sendall(piece))
	end
	c:shutdown'w' -- FIN: the reader sees the end of the stream
	-- Wait for the reader to close (recv returns 0), then close: a clean FIN.
	c:recv(ffi.new'char[1]', 1)
	c:close()
end)

sock.start()
