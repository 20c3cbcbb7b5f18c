-- sock/addr.lua: address lookup (sock.addr and the ai, sa, ip objects).
-- Called by the module's loader as chunk(M, R): M is the module table being
-- built, R the Rust primitives (src/addr.rs has the details).
local M, R = ...

-- sock.addr(host, port, [socket_type], [family], [protocol], [flags], [expires]) -> ai
-- sock.addr(ai) -> ai
-- Failure: nil, err, code, msg.
--
-- A host that needs the resolver comes back from Rust as R.LOOKUP, lk: inside
-- a sock thread the lookup is yielded to the scheduler, which makes it off
-- the loop under `expires` (src/sched.rs); elsewhere it is made at once.
local LOOKUP, active = R.LOOKUP, R.active
local yield, running = coroutine.yield, coroutine.running

local function looked_up(expires, a, lk, ...)
	if a ~= LOOKUP then return a, lk, ... end
	local co = running()
	if co and active[co] then return yield(LOOKUP, lk, expires) end
	return lk:blocking()
end
R.looked_up = looked_up

function M.addr(host, port, socket_type, family, protocol, flags, expires)
	if expires ~= nil and (type(expires) ~= 'number' or expires ~= expires) then
		error("sock.addr: bad argument #7 'expires' (number expected)", 2)
	end
	if type(host) == 'cdata' then host = R.sa_arg(host) end
	return looked_up(expires, R.addr(host, port, socket_type, family, protocol, flags))
end

-- ip:tobinary() -> uint8_t[4|16], 4|16
-- The C API cannot make cdata: Rust passes the address bytes as a string and
-- this copies them into a new array.
local ok, ffi = pcall(require, 'ffi')
if ok then
	local new, copy = ffi.new, ffi.copy
	local u8a = ffi.typeof'uint8_t[?]'
	R.set_tobinary(function(s)
		local n = #s
		local b = new(u8a, n)
		copy(b, s, n)
		return b, n
	end)
end

-- Peer objects: the remote address of an accepted connection, kept as the
-- bytes that src/addr.rs (peer_bytes) wrote, in a 28-byte cdata: tcp:accept
-- makes no sa for it. A peer is an sa in every method; the sa itself is made
-- (R.sa_of_peer, once, then kept beside the peer) only when a method needs
-- more than the bytes: tostring, addr, ==, and passing it where an address
-- is expected (R.sa_arg, which the functions that take a host call).
if ok then
	local istype, string = ffi.istype, ffi.string
	local PEER_MAX = R.PEER_MAX
	local peer_ct = ffi.typeof('struct { uint8_t len; uint8_t b[$]; }', PEER_MAX)
	local sa_of_peer = R.sa_of_peer
	local made = setmetatable({}, {__mode = 'k'}) -- peer -> its sa

	local function self_peer(p, func)
		if not istype(peer_ct, p) then
			error(('%s: bad argument #1 \'self\' (sa expected)'):format(func), 3)
		end
		return p
	end

	-- The sa of the peer p (its bytes are checked in Rust: Lua code may have
	-- written into them).
	local function sa_of(p)
		local sa = made[p]
		if not sa then
			local n = p.len
			if n > PEER_MAX then n = PEER_MAX end
			sa = sa_of_peer(string(p.b, n))
			made[p] = sa
		end
		return sa
	end

	local peer = {}
	function peer.family(p)
		local f = self_peer(p, 'sa:family').b[0]
		if p.len == 7 and f == 4 then return 'inet' end
		if p.len == 27 and f == 6 then return 'inet6' end
		return sa_of(p):family()
	end
	function peer.port(p)
		self_peer(p, 'sa:port')
		if p.len == 7 or p.len == 27 then return p.b[1] * 256 + p.b[2] end
		return sa_of(p):port()
	end
	function peer.tostring(p) return sa_of(self_peer(p, 'sa:tostring')):tostring() end
	function peer.addr(p) return sa_of(self_peer(p, 'sa:addr')):addr() end

	local function as_sa(x)
		if istype(peer_ct, x) then return sa_of(x) end
		return x
	end
	ffi.metatype(peer_ct, {
		__index = peer,
		__tostring = function(p) return sa_of(p):tostring() end,
		-- (LuaJIT calls a cdata's __eq whatever the other operand is, nil too.)
		__eq = function(a, b)
			a, b = as_sa(a), as_sa(b)
			return type(a) == 'userdata' and type(b) == 'userdata' and a == b
		end,
	})
	R.peer_ct = peer_ct
	-- A host argument: a peer becomes its sa; anything else is left as it is.
	R.sa_arg = as_sa
else
	R.sa_arg = function(x) return x end
end
