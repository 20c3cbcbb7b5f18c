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
