-- sock/addr.lua: address lookup (sock.addr and the ai, sa, ip objects).
-- Called by the module's loader as chunk(M, R): M is the module table being
-- built, R the Rust primitives (src/addr.rs has the details).
local M, R = ...

-- sock.addr(host, port, [socket_type], [family], [protocol], [flags]) -> ai
-- sock.addr(ai) -> ai
-- Failure: nil, err, code, msg.
M.addr = R.addr

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
