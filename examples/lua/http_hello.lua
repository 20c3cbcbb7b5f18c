-- http_hello.lua: an HTTP/1.1 "Hello, world!" server with keep-alive and
-- pipelining, one sock thread per connection. Load it with wrk:
--
--   LUA_CPATH='target/lua/?.so;;' luajit examples/lua/http_hello.lua [port] [host]
--   curl -i http://127.0.0.1:8080/
--   wrk -t1 -c16 -d2s http://127.0.0.1:8080/
--
-- port defaults to 8080 (0: any free port), host to 127.0.0.1. Serves until
-- killed.
--
-- Requests are read into one cdata buffer per connection and split where
-- "\r\n\r\n" ends their header (memmem); every complete request in the buffer
-- is answered, and the answers go out in one send (pipelining). A request body
-- (Content-Length) is skipped. "Connection: close" (or HTTP/1.0 without
-- keep-alive) gets its answer, then the server closes its side with
-- shutdown('w') and reads until the client's FIN before close(), so that the
-- client never gets a RST that would cut the answer.
local sock = require'sock'
local ffi = require'ffi'
local C = ffi.C

ffi.cdef[[
void *memmem(const void *haystack, size_t haystacklen, const void *needle, size_t needlelen);
void *memmove(void *dest, const void *src, size_t n);
]]

local port = tonumber(arg[1]) or 8080
local host = arg[2] or '127.0.0.1'
local BUFSIZE = 16 * 1024 -- per connection; also the largest request header
local IDLE = 30 -- seconds a keep-alive connection may wait for its next request
local BODY = 'Hello, world!'

io.stdout:setvbuf'line'

-- Responses ------------------------------------------------------------------

local REASON = {
	[200] = 'OK',
	[400] = 'Bad Request',
	[431] = 'Request Header Fields Too Large',
	[501] = 'Not Implemented',
}

local date_t, date -- the Date header, made once a second
local hello -- the common response (200, keep-alive, with body), once a second

local function http_date()
	local t = os.time()
	if t ~= date_t then
		date_t, date = t, os.date('!%a, %d %b %Y %H:%M:%S GMT', t)
		hello = nil
	end
	return date
end

local function response(status, keepalive, head_only, http10)
	local d = http_date()
	local common = status == 200 and keepalive and not head_only and not http10
	if common and hello then return hello end
	local body = status == 200 and BODY or REASON[status] .. '\n'
	local conn = not keepalive and 'Connection: close\r\n'
		or http10 and 'Connection: keep-alive\r\n' or ''
	local r = 'HTTP/1.1 ' .. status .. ' ' .. REASON[status] .. '\r\n'
		.. 'Server: sock-lua\r\nDate: ' .. d .. '\r\n'
		.. 'Content-Type: text/plain\r\nContent-Length: ' .. #body .. '\r\n'
		.. conn .. '\r\n' .. (head_only and '' or body)
	if common then hello = r end
	return r
end

-- Parses one request header (request line to the blank line, inclusive).
-- Returns status, keepalive, head_only, http10, body_length.
local function parse(head)
	local method, major, minor = head:match('^(%u+) [^ \r\n]+ HTTP/(%d)%.(%d)\r\n')
	if not method then return 400, false end
	local http10 = major == '1' and minor == '0'
	local keepalive = not http10 -- the default of HTTP/1.1; HTTP/1.0 asks for it
	local body = 0
	for name, value in head:gmatch('\n([^:\r\n]+):[ \t]*([^\r\n]*)') do
		name = name:lower()
		if name == 'connection' then
			value = value:lower()
			if value:find('close', 1, true) then
				keepalive = false
			elseif value:find('keep-alive', 1, true) then
				keepalive = true
			end
		elseif name == 'content-length' then
			body = tonumber(value)
			if not body or body < 0 or body % 1 ~= 0 then return 400, false end
		elseif name == 'transfer-encoding' then
			return 501, false -- chunked request bodies: not in a hello world
		end
	end
	return 200, keepalive, method == 'HEAD', http10, body
end

-- Connections ----------------------------------------------------------------

-- The server is done with this connection but the client may still be sending
-- (pipelined requests we will not answer). close() now would send a RST, which
-- can destroy the answers not yet read by the client. So: FIN first, then read
-- and discard until the client's FIN (recv returns 0), then close.
local function close_gracefully(c, buf)
	c:shutdown'w'
	local deadline = sock.clock() + 5
	while true do
		local n = c:recv(buf, BUFSIZE, deadline)
		if not n then break end -- FIN (nil, 'closed'), timeout or reset: done
	end
	c:close()
end

local function serve(c)
	local buf = ffi.new('uint8_t[?]', BUFSIZE)
	local len = 0 -- bytes in buf not parsed yet (always at its start)
	local skip = 0 -- bytes of a request body still to discard
	local out, nout = {}, 0 -- the answers of one batch of requests
	while true do
		-- buf + len is pointer cdata: the length must be given (and it is).
		local n = c:recv(buf + len, BUFSIZE - len, sock.clock() + IDLE)
		if not n then break end -- idle timeout, error, or client closed (nil, 'closed')
		len = len + n
		local pos = 0
		if skip > 0 then -- len was 0: these bytes start with the rest of a body
			local d = math.min(skip, len)
			skip, pos = skip - d, d
		end
		local keep = true
		while true do -- every complete request in the buffer
			local p = C.memmem(buf + pos, len - pos, '\r\n\r\n', 4)
			if p == nil then break end -- incomplete: wait for more bytes
			local hend = tonumber(ffi.cast('uint8_t*', p) - buf) + 4
			local status, keepalive, head_only, http10, body =
				parse(ffi.string(buf + pos, hend - pos))
			nout = nout + 1
			out[nout] = response(status, keepalive, head_only, http10)
			if not keepalive then
				keep = false
				break
			end
			if hend + body <= len then
				pos = hend + body
			else -- the body goes on beyond the buffer: skip it as it arrives
				skip, pos = hend + body - len, len
			end
		end
		if nout > 0 then
			local ok = c:sendall(nout == 1 and out[1] or table.concat(out, '', 1, nout))
			for i = 1, nout do out[i] = nil end
			nout = 0
			if not ok then break end
		end
		if not keep then return close_gracefully(c, buf) end
		len = len - pos -- keep the unparsed rest, at the start of the buffer
		if len > 0 and pos > 0 then C.memmove(buf, buf + pos, len) end
		if len == BUFSIZE then -- a request header that does not fit
			c:sendall(response(431, false))
			return close_gracefully(c, buf)
		end
	end
	c:close()
end

-- The server -----------------------------------------------------------------

local server = assert(sock.tcp())
assert(server:setopt('so_reuseaddr', true))
local ok, err, _, msg = server:listen(host, port)
if not ok then
	io.stderr:write(('cannot listen on %s:%s: %s (%s)\n'):format(host, port, err, msg))
	os.exit(1)
end
print('http_hello: listening on http://' .. tostring(server:getsockname()) .. '/')

sock.newthread(function()
	while true do
		local c, err = server:accept()
		if c then
			c:setopt('tcp_nodelay', true)
			sock.newthread(serve, c)
		else
			io.stderr:write('accept: ', tostring(err), '\n') -- e.g. too_many_open_files
			sock.sleep(0.1)
		end
	end
end)

sock.start()
