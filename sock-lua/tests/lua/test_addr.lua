-- Address lookup: sock.addr and the ai, sa, ip objects (every row of the seed's
-- "address lookup" table and every form of the flags argument).
-- No DNS: only numeric hosts, 'localhost' (/etc/hosts), '*', unix paths, and bad
-- names with the numerichost flag.

local t = require'tap'
local ffi = require'ffi'
local sock = require'sock'
local u = require'util'

-- All the entries of the list from ai on, via ai:next().
local function entries(ai)
	local list = {}
	while ai do
		list[#list + 1] = ai
		ai = ai:next()
	end
	return list
end

local function set_of(list, f)
	local s = {}
	for _, v in ipairs(list) do s[f(v)] = true end
	return s
end

---------------------------------------------------------------- sock.addr rows

t.test('numeric IPv4 host and numeric port', function()
	local ai = sock.addr('127.0.0.1', 8080)
	t.ok(ai, 'an ai')
	t.eq(ai:tostring(), '127.0.0.1:8080')
	t.eq(ai:family(), 'inet')
	local types = set_of(entries(ai), function(a) return a:type() end)
	t.ok(types.tcp and types.udp, 'socket type 0 gives tcp and udp entries')
end)

t.test('numeric IPv6 host', function()
	local ai = sock.addr('::1', 443, 'tcp')
	t.eq(ai:tostring(), '[::1]:443')
	t.eq(ai:family(), 'inet6')
	t.eq(ai.addr:addr():tostring(), '::1')
end)

t.test('localhost (hosts file)', function()
	local ai = assert(sock.addr('localhost', 80, 'tcp', 'inet'))
	t.eq(ai:tostring(), '127.0.0.1:80')
end)

t.test("host '*' is the wildcard address", function()
	t.eq(sock.addr('*', 0, 'tcp', 'inet'):tostring(), '0.0.0.0:0')
	t.eq(sock.addr('*', 0, 'tcp', 'inet6'):tostring(), '[::]:0')
end)

t.test('port: number, numeric string, service name, nil, 0', function()
	t.eq(sock.addr('127.0.0.1', 8080, 'tcp').addr:port(), 8080)
	t.eq(sock.addr('127.0.0.1', '8080', 'tcp').addr:port(), 8080)
	t.eq(sock.addr('127.0.0.1', 'http', 'tcp').addr:port(), 80)
	t.eq(sock.addr('127.0.0.1', nil, 'tcp').addr:port(), 0)
	t.eq(sock.addr('127.0.0.1', 0, 'tcp').addr:port(), 0)
	t.eq(sock.addr('127.0.0.1', 65535, 'tcp').addr:port(), 65535)
end)

t.test('an ai is passed through', function()
	local ai = sock.addr('127.0.0.1', 1)
	t.ok(rawequal(sock.addr(ai), ai), 'the same object')
	local second = ai:next()
	t.ok(rawequal(sock.addr(second, 'ignored'), second), 'a later entry too')
end)

t.test('an sa in place of host gives a one-entry ai', function()
	local sa = sock.addr('127.0.0.1', 7, 'udp').addr
	local ai = sock.addr(sa, nil, 'udp')
	t.eq(ai:tostring(), '127.0.0.1:7')
	t.eq(ai:type(), 'udp')
	t.eq(ai:next(), nil)
	t.eq(sock.addr(sa):type(), 'tcp', 'default socket type')
end)

t.test("socket_type 'tcp', 'udp', 'raw', 0", function()
	for _, st in ipairs{'tcp', 'udp', 'raw'} do
		local ai = sock.addr('127.0.0.1', 0, st)
		for _, a in ipairs(entries(ai)) do
			t.eq(a:type(), st)
			t.eq(a:protocol(), st, 'default protocol of ' .. st)
		end
	end
	local all = set_of(entries(sock.addr('127.0.0.1', 0, 0)), function(a) return a:type() end)
	t.ok(all.tcp and all.udp, '0 means all')
end)

t.test("family 'inet', 'inet6', 'unix', 0", function()
	t.eq(sock.addr('localhost', 0, 'tcp', 'inet'):family(), 'inet')
	t.eq(sock.addr('::1', 0, 'tcp', 'inet6'):family(), 'inet6')
	t.eq(sock.addr('127.0.0.1', 0, 'tcp', 0):family(), 'inet')
	local ai = sock.addr('/tmp/sock-test.sock', 0, 'tcp', 'unix')
	t.eq(ai:family(), 'unix')
	t.eq(ai:type(), 'tcp')
	t.eq(ai:protocol(), 'ip')
	t.eq(ai:tostring(), '/tmp/sock-test.sock')
	t.eq(ai.addr:family(), 'unix')
	t.eq(ai.addr:port(), 0)
	t.eq(ai.addr:addr(), nil, 'no ip for unix addresses')
	t.eq(ai.addr:tostring(), '/tmp/sock-test.sock')
	t.eq(sock.addr('/tmp/u.sock', nil, 'udp', 'unix'):type(), 'udp')
end)

t.test('a family the host has no address of is a runtime failure', function()
	local ai, err, code, msg = sock.addr('127.0.0.1', 80, 'tcp', 'inet6')
	t.eq(ai, nil)
	t.eq(err, 'host_not_found')
	t.eq(type(code), 'number')
	t.has(msg, "host '127.0.0.1'")
end)

t.test('every protocol name', function()
	for _, p in ipairs{'ip', 'ipv6', 'tcp', 'udp', 'raw', 'icmp', 'igmp', 'icmpv6'} do
		local ai = assert(sock.addr('127.0.0.1', 0, 'raw', 0, p))
		t.eq(ai:protocol(), p)
		t.eq(ai:type(), 'raw')
	end
	t.eq(sock.addr('127.0.0.1', 0, 'tcp', 0, 'tcp'):protocol(), 'tcp')
	t.eq(sock.addr('127.0.0.1', 0, 'udp', 0, 'udp'):protocol(), 'udp')
	t.eq(sock.addr('127.0.0.1', 0, 'udp', 0, 0):protocol(), 'udp', '0: default')
	local ai, err = sock.addr('127.0.0.1', 0, 'udp', 0, 'tcp')
	t.eq(ai, nil, 'udp over tcp')
	t.eq(err, 'not_supported')
end)

t.test('names are ASCII case-insensitive', function()
	local ai = sock.addr('127.0.0.1', 0, 'TCP', 'Inet', 'tcp', 'NumericHost')
	t.eq(ai:type(), 'tcp')
	t.eq(ai:family(), 'inet')
end)

---------------------------------------------------------------- flags

t.test('flags: a string of names separated by spaces', function()
	t.ok(sock.addr('127.0.0.1', 80, 'tcp', 0, 0, 'numerichost'))
	t.ok(sock.addr('127.0.0.1', 80, 'tcp', 0, 0, 'passive numerichost'))
	t.ok(sock.addr('127.0.0.1', 80, 'tcp', 0, 0, ' numerichost  numericserv '))
	t.ok(sock.addr('127.0.0.1', 80, 'tcp', 0, 0, ''))
end)

t.test('flags: a list of names', function()
	local ai = sock.addr('127.0.0.1', 80, 'tcp', 0, 0, {'passive', 'numerichost'})
	t.eq(ai:tostring(), '127.0.0.1:80')
	local ai2, err = sock.addr('localhost', 80, 'tcp', 0, 0, {'numerichost'})
	t.eq(ai2, nil, 'numerichost from a list is applied')
	t.eq(err, 'host_not_found')
end)

t.test('flags: a set of names', function()
	local ai2, err = sock.addr('localhost', 80, 'tcp', 0, 0, {numerichost = true})
	t.eq(ai2, nil, 'numerichost from a set is applied')
	t.eq(err, 'host_not_found')
	t.ok(sock.addr('localhost', 80, 'tcp', 'inet', 0, {numerichost = false}),
		'a false entry is not set')
	t.ok(sock.addr('127.0.0.1', 80, 'tcp', 0, 0, {'passive', numerichost = true}),
		'list and set in one table')
	t.ok(sock.addr('127.0.0.1', 80, 'tcp', 0, 0, {}), 'empty table')
	t.ok(sock.addr('127.0.0.1', 80, 'tcp', 0, 0, 0), '0')
end)

t.test('flags: cannonname and canonname', function()
	t.eq(sock.addr('127.0.0.1', 80, 'tcp', 0, 0, 'cannonname'):name(), '127.0.0.1')
	t.eq(sock.addr('127.0.0.1', 80, 'tcp', 0, 0, {canonname = true}):name(), '127.0.0.1')
	t.eq(sock.addr('localhost', 80, 'tcp', 'inet', 0, {'cannonname'}):name(), 'localhost')
	t.eq(sock.addr('127.0.0.1', 80, 'tcp'):name(), nil, 'no name without the flag')
	local ai = sock.addr('127.0.0.1', 80, 0, 0, 0, 'canonname')
	t.eq(ai:next():name(), nil, 'the name is on the first entry only')
end)

t.test('flags: numericserv', function()
	t.eq(sock.addr('127.0.0.1', '80', 'tcp', 0, 0, 'numericserv').addr:port(), 80)
	local ai, err = sock.addr('127.0.0.1', 'http', 'tcp', 0, 0, 'numericserv')
	t.eq(ai, nil)
	t.eq(type(err), 'string')
end)

t.test('flags: v4mapped and all', function()
	local ai = sock.addr('127.0.0.1', 80, 'tcp', 'inet6', 0, 'v4mapped')
	t.eq(ai:tostring(), '[::ffff:127.0.0.1]:80')
	t.eq(ai.addr:addr():tostring(), '::ffff:127.0.0.1')
	local _, n = ai.addr:addr():tobinary()
	t.eq(n, 16)
	ai = sock.addr('127.0.0.1', 80, 'tcp', 'inet6', 0, {v4mapped = true, all = true})
	t.eq(ai:tostring(), '[::ffff:127.0.0.1]:80')
end)

t.test('flags: passive', function()
	t.eq(sock.addr('*', 80, 'tcp', 'inet', 0, 'passive'):tostring(), '0.0.0.0:80')
	t.eq(sock.addr('127.0.0.1', 80, 'tcp', 'inet', 0, 'passive'):tostring(), '127.0.0.1:80')
end)

t.test('flags: addrconfig is accepted', function()
	-- Whether IPv4 results survive depends on the machine's interfaces.
	local ai, err = sock.addr('127.0.0.1', 80, 'tcp', 'inet', 0, 'addrconfig')
	t.ok(ai or type(err) == 'string')
end)

---------------------------------------------------------------- runtime failures

t.test('a bad name with numerichost: nil, err, code, msg', function()
	local ai, err, code, msg = sock.addr('no.such.host', 80, 'tcp', 0, 0, 'numerichost')
	t.eq(ai, nil)
	t.eq(err, 'host_not_found')
	t.eq(type(code), 'number')
	t.ok(code ~= 0, 'the resolver code')
	t.has(msg, "host 'no.such.host', port 80")
	t.eq(select('#', sock.addr('no.such.host', 80, 0, 0, 0, 'numerichost')), 4)
end)

t.test('an unknown service: service_not_found', function()
	local ai, err, code, msg = sock.addr('127.0.0.1', 'no-such-service', 'tcp')
	t.eq(ai, nil)
	t.eq(err, 'service_not_found')
	t.eq(type(code), 'number')
	t.has(msg, "port 'no-such-service'")
end)

t.test('an empty host: invalid_argument', function()
	local ai, err, code = sock.addr('', 80)
	t.eq(ai, nil)
	t.eq(err, 'invalid_argument')
	t.eq(code, 0)
end)

t.test("sock.addr() with no host and no port: any address, port 0", function()
	local ai = assert(sock.addr())
	t.eq(ai:tostring(), '0.0.0.0:0')
	t.eq(ai.addr:port(), 0)
	local ai6 = assert(sock.addr(nil, nil, 'tcp', 'inet6'))
	t.eq(ai6:tostring(), '[::]:0')
end)

t.test("flags as the OS's AI_* bits OR-ed (the original's glue.bor() form)", function()
	-- Linux: AI_PASSIVE 1, AI_CANONNAME 2, AI_NUMERICHOST 4
	local ai = assert(sock.addr('127.0.0.1', 80, 'tcp', 'inet', nil, 4))
	t.eq(ai:tostring(), '127.0.0.1:80')
	local named = select(2, sock.addr('localhost', 80, 'tcp', 'inet', nil, 'numerichost'))
	t.eq(select(2, sock.addr('localhost', 80, 'tcp', 'inet', nil, 4)), named,
		'the number means what the name means')
	t.eq(assert(sock.addr('*', 0, 'tcp', 'inet', nil, 1 + 4)):tostring(), '0.0.0.0:0')
	u.raises_at("sock.addr: bad argument #6 'flags' (unknown address flag bits",
		sock.addr, '127.0.0.1', 80, 'tcp', 'inet', nil, 0x100000)
	u.raises_at("sock.addr: bad argument #6 'flags' (-1 is not",
		sock.addr, '127.0.0.1', 80, 'tcp', 'inet', nil, -1)
end)

---------------------------------------------------------------- programmer errors

t.test('bad arguments raise, naming the function and the argument', function()
	t.raises("sock.addr: bad argument #1 'host' (string, ai or sa expected, got table)",
		sock.addr, {}, 80)
	t.raises("sock.addr: bad argument #1 'host' (string, ai or sa expected, got nil)",
		sock.addr, nil, 80)
	t.raises("sock.addr: bad argument #1 'host' (string, ai or sa expected, got number)",
		sock.addr, 127, 80)
	t.raises("sock.addr: bad argument #1 'host' (string, ai or sa expected, got sock.ip)",
		sock.addr, sock.addr('127.0.0.1', 1).addr:addr(), 80)
	t.raises("sock.addr: bad argument #2 'port' (number or string expected, got table)",
		sock.addr, '127.0.0.1', {})
	t.raises("sock.addr: bad argument #2 'port' (number or string expected, got boolean)",
		sock.addr, '127.0.0.1', true)
	t.raises("sock.addr: bad argument #2 'port' (port 65536 not an integer in 0-65535)",
		sock.addr, '127.0.0.1', 65536)
	t.raises("sock.addr: bad argument #2 'port'", sock.addr, '127.0.0.1', -1)
	t.raises("sock.addr: bad argument #2 'port'", sock.addr, '127.0.0.1', 1.5)
	t.raises("sock.addr: bad argument #3 'socket_type' ('sctp' is not one of 'tcp', 'udp', 'raw' or 0)",
		sock.addr, '127.0.0.1', 80, 'sctp')
	t.raises("sock.addr: bad argument #3 'socket_type' ('tcp', 'udp', 'raw' or 0 expected, got number)",
		sock.addr, '127.0.0.1', 80, 1)
	t.raises("sock.addr: bad argument #4 'family' ('ipx' is not one of 'inet', 'inet6', 'unix' or 0)",
		sock.addr, '127.0.0.1', 80, 0, 'ipx')
	t.raises("sock.addr: bad argument #4 'family'", sock.addr, '127.0.0.1', 80, 0, {})
	t.raises("sock.addr: bad argument #5 'protocol' ('sctp' is not one of",
		sock.addr, '127.0.0.1', 80, 0, 0, 'sctp')
	t.raises("sock.addr: bad argument #6 'flags' (string, table or number expected, got boolean)",
		sock.addr, '127.0.0.1', 80, 0, 0, 0, true)
	t.raises("sock.addr: bad argument #6 'flags' (invalid address flag 'bogus'",
		sock.addr, '127.0.0.1', 80, 0, 0, 0, 'passive bogus')
	t.raises("sock.addr: bad argument #6 'flags' (invalid address flag 'bogus'",
		sock.addr, '127.0.0.1', 80, 0, 0, 0, {'bogus'})
	t.raises("sock.addr: bad argument #6 'flags' (invalid address flag 'bogus'",
		sock.addr, '127.0.0.1', 80, 0, 0, 0, {bogus = true})
	t.raises("sock.addr: bad argument #6 'flags' (flags table entries",
		sock.addr, '127.0.0.1', 80, 0, 0, 0, {passive = 1})
	t.raises("sock.addr: bad argument #6 'flags' (flags table entries",
		sock.addr, '127.0.0.1', 80, 0, 0, 0, {true})
end)

---------------------------------------------------------------- ai

t.test('ai:next() walks the list and ends with nil', function()
	local ai = sock.addr('127.0.0.1', 80)
	local list = entries(ai)
	t.ok(#list >= 2, 'tcp and udp entries')
	for _, a in ipairs(list) do
		t.eq(a:tostring(), '127.0.0.1:80')
	end
	t.eq(list[#list]:next(), nil)
end)

t.test('ai:addrs() iterates from this entry on', function()
	local ai = sock.addr('127.0.0.1', 80)
	local list = entries(ai)
	local n = 0
	for a in ai:addrs() do
		n = n + 1
		t.eq(a:type(), list[n]:type())
	end
	t.eq(n, #list)
	n = 0
	for a in ai:next():addrs() do
		n = n + 1
		t.eq(a:type(), list[n + 1]:type())
	end
	t.eq(n, #list - 1)
end)

t.test('ai:type(), ai:family(), ai:protocol(), ai:name(), ai:tostring()', function()
	local ai = sock.addr('127.0.0.1', 5000, 'udp', 'inet', 'udp')
	t.eq(ai:type(), 'udp')
	t.eq(ai:family(), 'inet')
	t.eq(ai:protocol(), 'udp')
	t.eq(ai:name(), nil)
	t.eq(ai:tostring(), '127.0.0.1:5000')
	t.eq(tostring(ai), '127.0.0.1:5000')
end)

t.test('ai.addr is an sa', function()
	local sa = sock.addr('127.0.0.1', 5000, 'tcp').addr
	t.eq(type(sa), 'userdata')
	t.eq(sa:tostring(), '127.0.0.1:5000')
	t.ok(sa == sock.addr('127.0.0.1', 5000, 'udp').addr, 'sa == sa compares addresses')
	t.ok(sa ~= sock.addr('127.0.0.1', 5001, 'tcp').addr)
end)

t.test('ai:free() is idempotent, and a freed ai raises', function()
	local ai = sock.addr('127.0.0.1', 80)
	local second = ai:next()
	local sa = ai.addr
	ai:free()
	ai:free()
	second:free()
	local freed = "bad argument #1 'self' (address list freed with ai:free())"
	t.raises('ai:type: ' .. freed, ai.type, ai)
	t.raises('ai:family: ' .. freed, ai.family, ai)
	t.raises('ai:protocol: ' .. freed, ai.protocol, ai)
	t.raises('ai:name: ' .. freed, ai.name, ai)
	t.raises('ai:tostring: ' .. freed, ai.tostring, ai)
	t.raises('ai:next: ' .. freed, ai.next, ai)
	t.raises('ai:addrs: ' .. freed, ai.addrs, ai)
	t.raises('ai.addr: ' .. freed, function() return ai.addr end)
	t.raises('ai:type: ' .. freed, second.type, second)
	t.raises("sock.addr: bad argument #1 'host' (address list freed with ai:free())",
		sock.addr, ai)
	t.eq(tostring(ai), 'ai: freed', 'tostring still works')
	t.eq(sa:tostring(), '127.0.0.1:80', 'an sa taken before stays valid')
end)

t.test('ai:free() during ai:addrs() iteration raises', function()
	local ai = sock.addr('127.0.0.1', 80)
	t.raises('ai:addrs: ', function()
		for a in ai:addrs() do a:free() end
	end)
end)

t.test('freed lists and the objects are collected', function()
	for _ = 1, 200 do
		local ai = sock.addr('127.0.0.1', 80)
		local _ = ai:next().addr:addr()
		if _ then ai:free() end
	end
	collectgarbage()
	collectgarbage()
	t.ok(sock.addr('127.0.0.1', 80))
end)

---------------------------------------------------------------- sa and ip

t.test('sa:family(), sa:port(), sa:tostring(), sa:addr()', function()
	local sa = sock.addr('127.0.0.1', 8080, 'tcp').addr
	t.eq(sa:family(), 'inet')
	t.eq(sa:port(), 8080)
	t.eq(sa:tostring(), '127.0.0.1:8080')
	t.eq(tostring(sa), '127.0.0.1:8080')
	t.eq(sa:addr():tostring(), '127.0.0.1')
	local sa6 = sock.addr('::1', 9, 'udp').addr
	t.eq(sa6:family(), 'inet6')
	t.eq(sa6:port(), 9)
	t.eq(sa6:tostring(), '[::1]:9')
end)

t.test('ip:tobinary() -> uint8_t[4], 4 for IPv4', function()
	local ip = sock.addr('127.0.0.1', 1, 'tcp').addr:addr()
	local b, n = ip:tobinary()
	t.eq(type(b), 'cdata')
	t.eq(n, 4)
	t.eq(ffi.sizeof(b), 4)
	t.ok(ffi.istype('uint8_t[?]', b), 'a uint8_t array')
	t.eq(b[0], 127); t.eq(b[1], 0); t.eq(b[2], 0); t.eq(b[3], 1)
	local b2 = ip:tobinary()
	t.ok(b2 ~= b, 'a new array each call')
	b2[0] = 10
	t.eq(ip:tobinary()[0], 127, 'the ip is not changed through the array')
end)

t.test('ip:tobinary() -> uint8_t[16], 16 for IPv6', function()
	local b, n = sock.addr('2001:db8::1', 1, 'tcp').addr:addr():tobinary()
	t.eq(n, 16)
	t.eq(ffi.sizeof(b), 16)
	t.eq(b[0], 0x20); t.eq(b[1], 0x01); t.eq(b[2], 0x0d); t.eq(b[3], 0xb8)
	t.eq(b[15], 1)
end)

t.test('ip:tostring() and tostring(ip)', function()
	local ip = sock.addr('0:0:0:0:0:0:0:1', 1, 'tcp').addr:addr()
	t.eq(ip:tostring(), '::1')
	t.eq(tostring(ip), '::1')
	local ip4 = sock.addr('10.1.2.3', 1, 'tcp').addr:addr()
	t.eq(tostring(ip4), '10.1.2.3')
	t.ok(ip4 == sock.addr('10.1.2.3', 2, 'udp').addr:addr(), 'ip == ip compares addresses')
end)

---------------------------------------------------------------- the module

t.test('loading the module twice in one state', function()
	local old = sock
	local ai = old.addr('127.0.0.1', 80, 'tcp')
	package.loaded.sock = nil
	local new = require'sock'
	t.ok(new ~= old, 'a new module table')
	t.eq(package.loaded.sock, new)
	t.eq(new.addr('::1', 1, 'tcp'):tostring(), '[::1]:1')
	t.eq(old.addr('::1', 2, 'tcp'):tostring(), '[::1]:2', 'the old table still works')
	t.eq(ai:tostring(), '127.0.0.1:80', 'objects made before still work')
	local b, n = ai.addr:addr():tobinary()
	t.eq(n, 4); t.eq(b[0], 127)
	t.ok(rawequal(new.addr(ai), ai), 'an old ai passes through the new module')
	package.loaded.sock = old
end)

t.test('objects are named in type errors', function()
	local ai = sock.addr('127.0.0.1', 1)
	t.raises('got sock.sa', sock.addr, '127.0.0.1', ai.addr)
	t.raises('got sock.ai', sock.addr, '127.0.0.1', ai)
end)
