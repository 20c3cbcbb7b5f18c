-- Unix-domain sockets: the 'unix' family with paths in /tmp, stream (tcp) and
-- datagram (udp) sockets. Every path is removed at the end of its test.

local t = require'tap'
local ffi = require'ffi'
local sock = require'sock'
local u = require'util'

local exp = u.exp

local function str(buf, n) return ffi.string(buf, n) end

-- Runs fn(path1, path2, ...) with fresh paths, removing them afterwards.
local function with_paths(n, fn)
	local paths = {}
	for i = 1, n do
		paths[i] = u.tmppath('unix' .. i .. '-' .. math.random(1e9))
		os.remove(paths[i])
	end
	local ok, err = xpcall(fn, debug.traceback, unpack(paths))
	for i = 1, n do os.remove(paths[i]) end
	if not ok then error(err, 0) end
end

t.test("stream: listen(path), connect(path), accept, echo; family 'unix'", function()
	with_paths(1, function(path)
		local srv = assert(sock.tcp('unix'))
		t.eq(srv:family(), 'unix'); t.eq(srv:type(), 'tcp')
		t.eq(srv:listen(path), true)
		t.eq(srv:getsockname():tostring(), path)
		t.eq(srv:getsockname():family(), 'unix')
		t.ok(u.exists(path), 'the socket file exists while listening')
		local res = {}
		u.run(function()
			local c = assert(sock.tcp('unix'))
			res.connect = c:connect(path, nil, exp())
			local a, remote, loc = srv:accept(exp())
			res.remote, res.loc = remote:tostring(), loc:tostring()
			res.rfamily = remote:family()
			res.peer = c:getpeername():tostring()
			assert(c:sendall('over unix'))
			local buf = ffi.new'char[9]'
			assert(a:recvall(buf, 9, exp()))
			res.data = str(buf, 9)
			assert(a:sendall('back'))
			local n = c:recv(buf, 9, exp())
			res.back = str(buf, n)
			a:close()
			res.eof = select(2, c:recv(buf, 9, exp()))
			c:close()
		end)
		t.eq(res.connect, true)
		t.eq(res.remote, '', 'an unnamed client')
		t.eq(res.rfamily, 'unix')
		t.eq(res.loc, path)
		t.eq(res.peer, path)
		t.eq(res.data, 'over unix'); t.eq(res.back, 'back'); t.eq(res.eof, 'closed')
		srv:close()
		t.ok(not u.exists(path), 'close removed the socket file')
	end)
end)

t.test('stream: a named client, ai in place of host, and connect errors', function()
	with_paths(3, function(spath, cpath, nopath)
		local srv = assert(sock.tcp('unix'))
		assert(srv:listen(sock.addr(spath, nil, 'tcp', 'unix'), nil))
		local res = {}
		u.run(function()
			local c = assert(sock.tcp('unix'))
			assert(c:bind(cpath))
			assert(c:connect(spath, nil, exp()))
			local a, remote = assert(srv:accept(exp()))
			res.remote = remote:tostring()
			a:close(); c:close()
			local c2 = assert(sock.tcp('unix'))
			res.missing = {c2:connect(nopath, nil, exp())}
			c2:close()
		end)
		t.eq(res.remote, cpath)
		t.eq(res.missing[1], nil)
		t.eq(res.missing[3], 2, 'ENOENT')
		srv:close()
		t.ok(not u.exists(cpath), 'the bound client file was removed on close')
	end)
end)

t.test('stream: bind to a path in use: address_already_in_use', function()
	with_paths(1, function(path)
		local a = assert(sock.tcp('unix'))
		assert(a:listen(path))
		local b = assert(sock.tcp('unix'))
		local r, err = b:bind(path)
		t.eq(r, nil); t.eq(err, 'address_already_in_use')
		a:close(); b:close()
	end)
end)

t.test('stream: shutdown(w) and RST semantics over unix', function()
	with_paths(1, function(path)
		local srv = assert(sock.tcp('unix'))
		assert(srv:listen(path))
		local res = {}
		u.run(function()
			local c = assert(sock.tcp('unix'))
			assert(c:connect(path, nil, exp()))
			local a = assert(srv:accept(exp()))
			assert(c:shutdown('w'))
			local buf = ffi.new'char[8]'
			res.eof = select(2, a:recv(buf, 8, exp()))
			res.sent = a:send('still')
			local n = c:recv(buf, 8, exp())
			res.back = str(buf, n)
			-- close with unread data: the peer gets connection_reset
			assert(a:send('unread'))
			c:close()
			res.reset = {a:recv(buf, 8, exp())}
			a:close()
		end)
		t.eq(res.eof, 'closed'); t.eq(res.sent, 5); t.eq(res.back, 'still')
		t.eq(res.reset[2], 'connection_reset')
		srv:close()
	end)
end)

t.test('stream: timeouts and close wakes on unix sockets', function()
	with_paths(1, function(path)
		local srv = assert(sock.tcp('unix'))
		assert(srv:listen(path))
		local res = {}
		u.run(function()
			local e = sock.clock() + 0.05
			res.acc = {srv:accept(e)}
			res.late = sock.clock() - e
			sock.newthread(function() res.woken = {srv:accept(exp(3))} end)
			sock.sleep(0.01)
			srv:close()
		end)
		t.eq(res.acc[2], 'timeout')
		t.ok(res.late >= 0 and res.late < 0.05)
		t.eq(res.woken[2], 'closed')
	end)
end)

t.test('datagram: bind(path), sendto(path), recvnext with the source path', function()
	with_paths(2, function(p1, p2)
		local d1 = assert(sock.udp('unix'))
		t.eq(d1:family(), 'unix'); t.eq(d1:type(), 'udp')
		assert(d1:bind(p1))
		local d2 = assert(sock.udp('unix'))
		local res = {}
		u.run(function()
			local buf = ffi.new'char[16]'
			res.n0 = d2:sendto(p1, nil, 'unnamed')
			local n, sa = d1:recvnext(buf, 16, exp())
			res.unnamed, res.sa0 = str(buf, n), sa:tostring()
			assert(d2:bind(p2))
			res.n1 = d2:sendto(p1, nil, 'named')
			n, sa = d1:recvnext(buf, 16, exp())
			res.named, res.sa1 = str(buf, n), sa:tostring()
			res.fam = sa:family()
			-- an empty datagram and a truncated one
			assert(d2:sendto(p1, nil, ''))
			res.empty = d1:recvnext(buf, 16, exp())
			assert(d2:sendto(p1, nil, 'truncated datagram'))
			res.trunc = {d1:recvnext(buf, 4, exp())}
			res.kept = str(buf, 4)
			-- connect filters and sets the destination of send
			assert(d1:connect(p2))
			res.sent = d1:send('reply')
			n = d2:recv(buf, 16, exp())
			res.reply = str(buf, n)
			res.timeout = select(2, d2:recv(buf, 16, sock.clock() + 0.02))
		end)
		t.eq(res.n0, 7); t.eq(res.unnamed, 'unnamed'); t.eq(res.sa0, '')
		t.eq(res.n1, 5); t.eq(res.named, 'named'); t.eq(res.sa1, p2); t.eq(res.fam, 'unix')
		t.eq(res.empty, 0)
		t.eq(res.trunc[1], 4); t.eq(res.trunc[2]:tostring(), p2); t.eq(res.trunc[3], 'truncated')
		t.eq(res.kept, 'trun')
		t.eq(res.sent, 5); t.eq(res.reply, 'reply')
		t.eq(res.timeout, 'timeout')
		d1:close(); d2:close()
		t.ok(not u.exists(p1) and not u.exists(p2), 'close removed both files')
	end)
end)

t.test("datagram: connect('*', 0) un-filters a unix socket too", function()
	with_paths(2, function(p1, p2)
		local d1 = assert(sock.udp('unix'))
		assert(d1:bind(p1))
		local d2 = assert(sock.udp('unix'))
		assert(d2:bind(p2))
		assert(d1:connect(p2))
		local r = d1:connect('*', 0)
		local again, err = d1:connect('*', 0)
		d1:close(); d2:close()
		t.eq(r, true)
		t.eq(again, nil); t.eq(err, 'not_connected')
	end)
end)
