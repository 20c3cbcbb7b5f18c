-- common.lua: what the benchmark's Lua servers share (bench/README.md): the
-- command line, the answers of the HTTP hello world, and the request test.
-- Every server takes ECHO_PORT HTTP_PORT and listens on 127.0.0.1.
local M = {}

M.BUF = 16 * 1024 -- a server's own buffer per connection, where it has one
M.BACKLOG = 1024

M.KEEP = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!'
M.CLOSE = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n'
	.. 'Connection: close\r\n\r\nHello, world!'

-- Whether a request header (a string) asks to close.
function M.wants_close(head)
	return head:lower():find('\nconnection: close', 1, true) ~= nil
end

-- Answers every complete request in s (a string): returns the answers (a
-- string), the bytes used, and whether one asked to close (it is the last).
function M.answer(s)
	local pos, out, n = 1, nil, 0
	while true do
		local e = s:find('\r\n\r\n', pos, true)
		if not e then break end
		local close = M.wants_close(s:sub(pos, e))
		pos = e + 4
		n = n + 1
		local a = close and M.CLOSE or M.KEEP
		if n == 1 then out = a else out = out .. a end
		if close then return out, pos - 1, true end
	end
	return out, pos - 1, false
end

-- The handshake of every TLS server of the harness (bench/README.md): TLS 1.3,
-- the one suite TLS_AES_128_GCM_SHA256, the one group X25519.
M.TLS_PROTOCOLS = 'tlsv1.3'
M.TLS_CIPHERS = 'TLS_AES_128_GCM_SHA256'
M.TLS_CURVES = 'x25519'

-- TLS_PORT CERT KEY after the two ports (sock's TLS server), or nothing.
function M.tls_args()
	if arg[3] == nil then return nil end
	local p = tonumber(arg[3])
	if not (p and arg[4] and arg[5]) then
		io.stderr:write('usage: ', arg[0], ' ECHO_PORT HTTP_PORT [TLS_PORT CERT KEY]\n')
		os.exit(2)
	end
	return p, arg[4], arg[5]
end

function M.ports()
	local e, h = tonumber(arg[1]), tonumber(arg[2])
	if not (e and h) then
		io.stderr:write('usage: ', arg[0], ' ECHO_PORT HTTP_PORT\n')
		os.exit(2)
	end
	return e, h
end

return M
