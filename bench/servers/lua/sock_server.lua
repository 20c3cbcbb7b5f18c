-- sock_server.lua: the benchmark's sock server from LuaJIT (the module built
-- by scripts/build-lua.sh), written the idiomatic way: a sock thread per
-- connection, a cdata buffer per connection, recv into it, sendall from it.
-- Buffers are reused: a connection takes one from a free list and gives it
-- back when it ends, the way a program that uses buffers instead of strings
-- avoids garbage (a new 16 KiB buffer per connection is 16 KiB of zeroing and
-- of GC debt, which makes the collector run ten times as often in W3).
--
-- With TLS_PORT CERT KEY after the ports (W5, W6), the HTTP hello world over
-- TLS on that port too: require'sock_tls' (the original's sock_libtls API),
-- server_stcp over the listening socket with the certificate and key files
-- and the one handshake of every TLS server of the harness (TLS 1.3,
-- TLS_AES_128_GCM_SHA256, X25519); the same handler on the TLS sockets it
-- accepts (a connection's handshake runs in its own thread, on its first
-- recv).
--
--   LUA_CPATH='target/lua/?.so;;' luajit sock_server.lua ECHO_PORT HTTP_PORT [TLS_PORT CERT KEY]
local sock = require'sock'
local ffi = require'ffi'
local C = ffi.C
local common = dofile(arg[0]:gsub('[^/]*$', '') .. 'common.lua')

ffi.cdef[[
void *memmem(const void *haystack, size_t haystacklen, const void *needle, size_t needlelen);
void *memmove(void *dest, const void *src, size_t n);
]]

local BUF = common.BUF

local free, nfree = {}, 0
local function getbuf()
	if nfree == 0 then return ffi.new('uint8_t[?]', BUF) end
	local b = free[nfree]
	free[nfree], nfree = nil, nfree - 1
	return b
end
local function putbuf(b)
	nfree = nfree + 1
	free[nfree] = b
end
local echo_port, http_port = common.ports()

-- SOCK_BENCH_LINES=1 (W4's line-reader variant): the echo on the buffered
-- reader, a line at a time; an idle connection holds no buffer.
local function echo_lines(c)
	while true do
		local line = c:readline(BUF, true)
		if not line then break end
		if not c:sendall(line) then break end
	end
	c:close()
end

local function echo(c)
	local buf = getbuf()
	while true do
		local n = c:recv(buf, BUF)
		if not n or n == 0 then break end
		if not c:sendall(buf, n) then break end
	end
	c:close()
	putbuf(buf)
end

-- Whether the header in buf[from, to) asks to close: "\nconnection: close" in
-- any case, looked for in the buffer itself (a loop the JIT compiles; no
-- string is made), as the C and Rust servers do.
local CLOSE_HDR = '\nconnection: close'
local close_hdr = ffi.new('uint8_t[?]', #CLOSE_HDR, CLOSE_HDR)
local bor = bit.bor
local function wants_close(buf, from, to)
	local n = #CLOSE_HDR
	for i = from, to - n do
		if buf[i] == 10 then
			local k = 1
			while k < n and bor(buf[i + k], 0x20) == close_hdr[k] do k = k + 1 end
			if k == n then return true end
		end
	end
	return false
end

-- Requests are split where their header ends (memmem on the cdata buffer).
local function http(c)
	local buf = getbuf()
	local len = 0
	while true do
		local n = c:recv(buf + len, BUF - len)
		if not n or n == 0 then break end
		len = len + n
		local pos, out, close = 0, nil, false
		while true do
			local p = C.memmem(buf + pos, len - pos, '\r\n\r\n', 4)
			if p == nil then break end
			local e = tonumber(ffi.cast('uint8_t*', p) - buf) + 4
			close = wants_close(buf, pos, e)
			local a = close and common.CLOSE or common.KEEP
			out = out and out .. a or a
			pos = e
			if close then break end
		end
		if out and not c:sendall(out) then break end
		if close or (pos == 0 and len == BUF) then break end
		len = len - pos
		if len > 0 and pos > 0 then C.memmove(buf, buf + pos, len) end
	end
	c:close()
	putbuf(buf)
end

local function serve(port, handler)
	local s = assert(sock.tcp())
	assert(s:setopt('so_reuseaddr', true))
	assert(s:listen(common.BACKLOG, '127.0.0.1', port))
	sock.newthread(function()
		while true do
			local c, err = s:accept()
			if c then
				c:setopt('tcp_nodelay', true)
				sock.newthread(handler, c)
			else
				io.stderr:write('accept: ', tostring(err), '\n')
				sock.sleep(0.1)
			end
		end
	end)
end

-- The HTTP hello world over TLS. TCP_NODELAY is set on the listening socket:
-- Linux's accepted sockets inherit it.
local function serve_tls(port, cert_file, key_file)
	local stls = require'sock_tls'
	local s = assert(sock.tcp())
	assert(s:setopt('so_reuseaddr', true))
	assert(s:setopt('tcp_nodelay', true))
	assert(s:listen(common.BACKLOG, '127.0.0.1', port))
	local ss = assert(stls.server_stcp(s, {
		cert_file = cert_file, key_file = key_file,
		protocols = common.TLS_PROTOCOLS, ciphers = common.TLS_CIPHERS,
		ecdhecurves = common.TLS_CURVES,
	}))
	sock.newthread(function()
		while true do
			local c, err = ss:accept()
			if c then
				sock.newthread(http, c)
			else
				io.stderr:write('accept: ', tostring(err), '\n')
				sock.sleep(0.1)
			end
		end
	end)
end

serve(echo_port, os.getenv'SOCK_BENCH_LINES' == '1' and echo_lines or echo)
serve(http_port, http)
local tls_port, cert_file, key_file = common.tls_args()
if tls_port then serve_tls(tls_port, cert_file, key_file) end
sock.start()
