-- Raw sockets: sock.raw, and an ICMP echo to 127.0.0.1 (and ICMPv6 to ::1)
-- through sendto/recvnext. Raw sockets need root (CAP_NET_RAW): the tests that
-- open them skip with the reason otherwise.

local t = require'tap'
local ffi = require'ffi'
local bit = require'bit'
local sock = require'sock'
local u = require'util'

local exp = u.exp

local function need_root()
	if not u.is_root() then t.skip('raw sockets need root (CAP_NET_RAW); not root') end
end

-- The Internet checksum of `n` bytes at `p`.
local function checksum(p, n)
	local sum = 0
	for i = 0, n - 1, 2 do
		local w = p[i] * 256 + (i + 1 < n and p[i + 1] or 0)
		sum = sum + w
	end
	while sum > 0xffff do sum = bit.band(sum, 0xffff) + bit.rshift(sum, 16) end
	return bit.band(bit.bnot(sum), 0xffff)
end

-- An ICMP echo request: type, code 0, checksum, id, seq, payload.
local function echo_request(typ, id, seq, payload, with_checksum)
	local n = 8 + #payload
	local p = ffi.new('uint8_t[?]', n)
	p[0] = typ
	p[4], p[5] = bit.rshift(id, 8), bit.band(id, 0xff)
	p[6], p[7] = bit.rshift(seq, 8), bit.band(seq, 0xff)
	ffi.copy(p + 8, payload, #payload)
	if with_checksum then
		local c = checksum(p, n)
		p[2], p[3] = bit.rshift(c, 8), bit.band(c, 0xff)
	end
	return p, n
end

t.test("sock.raw(): type 'raw'; sock.raw('inet', 'icmp'): protocol 'icmp'", function()
	need_root()
	local r = assert(sock.raw())
	t.eq(r:type(), 'raw'); t.eq(r:family(), 'inet')
	t.eq(r:getopt'so_type', 'raw')
	t.ok(tostring(r):find('^sock%.raw %(%d+%)$'), tostring(r))
	r:close()
	local i = assert(sock.raw('inet', 'icmp'))
	t.eq(i:type(), 'raw'); t.eq(i:protocol(), 'icmp')
	i:close()
	local i6 = assert(sock.raw('inet6', 'icmpv6'))
	t.eq(i6:family(), 'inet6'); t.eq(i6:protocol(), 'icmpv6')
	i6:close()
end)

t.test('raw sockets have the udp methods, not the tcp ones', function()
	need_root()
	local r = assert(sock.raw('inet', 'icmp'))
	t.eq(type(r.sendto), 'function'); t.eq(type(r.recvnext), 'function')
	t.eq(r.accept, nil); t.eq(r.sendall, nil)
	r:close()
end)

t.test('ICMP echo to 127.0.0.1: request out, reply in, with the source address', function()
	need_root()
	local s = assert(sock.raw('inet', 'icmp'))
	local id = ffi.C.getpid() % 65536
	local res = {}
	u.run(function()
		local p, n = echo_request(8, id, 1, 'sock-lua ping', true)
		res.sent = s:sendto('127.0.0.1', 0, p, n)
		local buf = ffi.new'uint8_t[256]'
		-- the raw socket sees every ICMP packet on loopback, our request too
		for _ = 1, 10 do
			local len, sa = s:recvnext(buf, 256, exp())
			if not len then res.err = sa break end
			local ihl = bit.band(buf[0], 0x0f) * 4
			local icmp = buf + ihl
			local rid = icmp[4] * 256 + icmp[5]
			if icmp[0] == 0 and rid == id then
				res.len, res.from = len, sa:tostring()
				res.seq = icmp[6] * 256 + icmp[7]
				res.payload = ffi.string(icmp + 8, len - ihl - 8)
				res.ok_sum = checksum(icmp, len - ihl) == 0
				break
			end
		end
	end)
	t.eq(res.err, nil)
	t.eq(res.sent, 8 + #'sock-lua ping')
	t.eq(res.from, '127.0.0.1:0')
	t.eq(res.seq, 1)
	t.eq(res.payload, 'sock-lua ping')
	t.eq(res.ok_sum, true, 'the reply checksum verifies')
	s:close()
end)

t.test('ICMPv6 echo to ::1 (the kernel fills in the checksum)', function()
	need_root()
	if not u.has_ipv6() then t.skip('no IPv6 loopback (::1)') end
	local s = assert(sock.raw('inet6', 'icmpv6'))
	local id = (ffi.C.getpid() + 1) % 65536
	local res = {}
	u.run(function()
		local p, n = echo_request(128, id, 7, 'six ping', false)
		res.sent = s:sendto('::1', 0, p, n)
		local buf = ffi.new'uint8_t[256]'
		for _ = 1, 10 do
			-- IPv6 raw sockets receive the ICMPv6 message without the IP header
			local len, sa = s:recvnext(buf, 256, exp())
			if not len then res.err = sa break end
			if buf[0] == 129 and buf[4] * 256 + buf[5] == id then
				res.from = sa:addr():tostring()
				res.seq = buf[6] * 256 + buf[7]
				res.payload = ffi.string(buf + 8, len - 8)
				break
			end
		end
	end)
	t.eq(res.err, nil)
	t.eq(res.sent, 8 + #'six ping')
	t.eq(res.from, '::1')
	t.eq(res.seq, 7)
	t.eq(res.payload, 'six ping')
	s:close()
end)

t.test('raw recvnext timeout and close wake', function()
	need_root()
	local s = assert(sock.raw('inet', 'igmp'))
	local res = {}
	u.run(function()
		local e = sock.clock() + 0.05
		res.r = {s:recvnext(ffi.new'char[64]', 64, e)}
		res.late = sock.clock() - e
		sock.newthread(function()
			res.c = {s:recvnext(ffi.new'char[64]', 64, exp(3))}
		end)
		sock.sleep(0.01)
		s:close()
	end)
	t.eq(res.r[2], 'timeout')
	t.ok(res.late >= 0 and res.late < 0.05, 'on time: ' .. res.late)
	t.eq(res.c[2], 'closed')
end)

t.test("without CAP_NET_RAW: nil, 'access_denied' (as nobody, fresh process)", function()
	need_root()
	local probe = io.popen('command -v setpriv')
	local has = probe:read'*l'
	probe:close()
	if not has then t.skip('setpriv not available to drop privileges') end
	local f = os.tmpname()
	local h = assert(io.open(f, 'w'))
	h:write[[
		local sock = require'sock'
		local r, err, code = sock.raw('inet', 'icmp')
		io.write('raw=', tostring(r), ',', tostring(err), ',', tostring(code), '\n')
	]]
	h:close()
	os.execute('chmod 644 ' .. f)
	local exe = arg and arg[-1] or 'luajit'
	local cpath = os.getenv'LUA_CPATH' or package.cpath
	local cmd = ("LUA_CPATH='%s' setpriv --reuid=65534 --regid=65534 --clear-groups "
		.. "--inh-caps=-all --bounding-set=-all '%s' '%s' 2>&1"):format(cpath, exe, f)
	local p = io.popen(cmd)
	local out = p:read'*a'
	p:close()
	os.remove(f)
	if out:find('module .sock. not found') or out:find('Permission denied') then
		t.skip('the module is not readable by nobody: ' .. out:match'^[^\n]*')
	end
	t.has(out, 'raw=nil,access_denied,1\n')
end)
