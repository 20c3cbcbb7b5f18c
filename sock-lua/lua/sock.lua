-- sock/sock.lua: threads, sockets and the blocking calls of the seed API.
-- Called by the module's loader as chunk(M, R): M is the module table being
-- built, R the Rust primitives (src/sched.rs, src/socket.rs).
--
-- Every blocking call is a loop: one non-blocking attempt through a Rust
-- primitive (a result, `false` for "would block", or nil, err, code, msg), and
-- on "would block" a yield of the wait request to the scheduler, which parks
-- this thread on the socket (or a deadline) and resumes it with `true` (try
-- again) or nil, err, code, msg (timeout, closed).
local M, R = ...

local ffi = require'ffi'
local yield, running, create = coroutine.yield, coroutine.running, coroutine.create
-- The standard coroutine.resume and wrap (this chunk replaces the globals;
-- R keeps the originals for every load of the module in this state).
local co_resume, co_wrap = R.co_resume, R.co_wrap
local type, error, select, tonumber, setmetatable = type, error, select, tonumber, setmetatable
local traceback, xpcall = debug.traceback, xpcall

local WAIT, TRANSFER, FAILED = R.WAIT, R.TRANSFER, R.FAILED
local READ, WRITE = 0, 1

-- The coroutines that sock threads are running now: the threads, and the
-- generators they resumed through the trampoline, until those yield back.
-- Their yields belong to the scheduler, so their I/O may wait and nobody else
-- may resume them. Weak keys: an abandoned one is garbage. One set per Lua
-- state, shared by every load of the module.
local active = R.active
local NOT_SUSPENDED = 'cannot resume non-suspended coroutine'

-- Raises a bad-argument error at the position of the code that called the
-- API function `func`: `depth` is the number of helper functions between
-- `func` and argerr (0 when `func` calls it itself).
local function argerr(func, pos, name, msg, depth)
	error(('%s: bad argument #%d \'%s\' (%s)'):format(func, pos, name, msg), 3 + (depth or 0))
end

local function in_thread()
	local co = running()
	return co and active[co]
end

-- The wait of every blocking call: true, or nil, err, code, msg.
local function wait(s, dir, expires)
	if not in_thread() then
		return nil, 'not_in_thread', 0,
			'I/O called outside a sock thread (start one with sock.newthread)'
	end
	return yield(WAIT, s, dir, expires)
end

-- threads -------------------------------------------------------------------

local onerror = function(err, co)
	io.stderr:write('sock: thread ', tostring(co), ' failed: ', tostring(err), '\n')
end

-- Called by the scheduler when a thread raises: never lets an error escape.
R.report = function(err, co)
	local ok, e = pcall(onerror, err, co)
	if not ok then
		io.stderr:write('sock: error handler failed: ', tostring(e), '\n')
	end
end

--- sock.onerror(f): f(err, co) receives the errors (with tracebacks) of
--- threads that raise; the default writes them to stderr.
function M.onerror(f)
	if type(f) ~= 'function' then argerr('sock.onerror', 1, 'f', 'function expected') end
	onerror = f
end

local function finish(co, ok, ...)
	active[co] = nil
	if ok then return ... end
	return FAILED, ...
end

-- The error of a thread, for onerror: a string gets the thread's traceback;
-- sock's raised errors (userdata) already carry one and become their text;
-- other values (tables) pass as they are.
local function with_traceback(e)
	if type(e) == 'string' then return traceback(e, 2) end
	if type(e) == 'userdata' then return tostring(e) end
	return e
end

local function body(f)
	return function(...)
		return finish(running(), xpcall(f, with_traceback, ...))
	end
end

--- sock.newthread(f, ...) -> co: starts f(...) as a sock thread, at once;
--- returns at its first blocking call.
function M.newthread(f, ...)
	if type(f) ~= 'function' then argerr('sock.newthread', 1, 'func', 'function expected') end
	local co = create(body(f))
	active[co] = true
	R.spawn(co, R.report, co_resume, ...)
	return co
end

--- sock.currentthread() -> co: the running sock thread, or nil.
function M.currentthread()
	local co = running()
	return co and active[co] and co or nil
end

--- sock.poll([timeout]) -> true | false, 'timeout' | false, 'empty'
function M.poll(timeout)
	if timeout ~= nil and type(timeout) ~= 'number' then
		argerr('sock.poll', 1, 'timeout', 'number expected')
	end
	return R.poll(timeout)
end

M.start = R.start
M.stop = R.stop
M.clock = R.clock

--- sock.sleep_until(t): sleeps until sock.clock() reaches t.
function M.sleep_until(t)
	if type(t) ~= 'number' then argerr('sock.sleep_until', 1, 't', 'number expected') end
	if t ~= t then argerr('sock.sleep_until', 1, 't', 'NaN') end
	local ok, err, code, msg = wait(nil, nil, t)
	if err then return nil, err, code, msg end
end

--- sock.sleep(s): sleeps s seconds.
function M.sleep(s)
	if type(s) ~= 'number' then argerr('sock.sleep', 1, 's', 'number expected') end
	if s ~= s then argerr('sock.sleep', 1, 's', 'NaN') end
	return M.sleep_until(R.clock() + s)
end

function M.epoll_fd(fd)
	if fd ~= nil and type(fd) ~= 'number' then argerr('sock.epoll_fd', 1, 'epfd', 'number expected') end
	return R.epoll_fd(fd)
end

function M.iocp()
	return nil, 'not_supported', 0, 'IOCP is a Windows facility'
end

-- coroutines inside threads: the trampoline -----------------------------------

local function untransfer(co, ...)
	active[co] = nil
	return ...
end

-- Runs the generator co inside this thread until it yields, returns or
-- raises: true, values... | false, err.
local function transfer(co, ...)
	if active[co] then return false, NOT_SUSPENDED end
	active[co] = true
	return untransfer(co, yield(TRANSFER, co, ...))
end

-- coroutine.resume outside sock threads: refuses the coroutines that sock
-- threads are running.
local function resume(co, ...)
	if active[co] then return false, NOT_SUSPENDED end
	return co_resume(co, ...)
end

local function unwrap(ok, ...)
	if ok then return ... end
	error((...), 2)
end

--- sock.cowrap(f) -> wrapper: like coroutine.wrap, but the coroutine may do
--- socket I/O between its yields; its waits park only itself.
function M.cowrap(f)
	if type(f) ~= 'function' then argerr('sock.cowrap', 1, 'f', 'function expected') end
	local co = create(f)
	return function(...)
		if not in_thread() then return unwrap(resume(co, ...)) end
		return unwrap(transfer(co, ...))
	end
end

-- Inside sock threads, coroutine.resume/wrap go through the trampoline, so
-- that ordinary iterators written with coroutine.wrap can do socket I/O.
-- Outside sock threads they are the standard ones.
function coroutine.resume(co, ...)
	if in_thread() and type(co) == 'thread' then return transfer(co, ...) end
	return resume(co, ...)
end

function coroutine.wrap(f)
	if not in_thread() then return co_wrap(f) end
	local co = create(f)
	return function(...)
		if not in_thread() then return unwrap(resume(co, ...)) end
		return unwrap(transfer(co, ...))
	end
end

-- buffers ---------------------------------------------------------------------

local uintptr = ffi.typeof'uintptr_t'
local kinds = {} -- ctype id -> 'array' | 'pointer'

local function kind_of(buf)
	local ct = ffi.typeof(buf)
	local id = tonumber(ct)
	local k = kinds[id]
	if not k then
		k = tostring(ct):find('%*') and 'pointer' or 'array'
		kinds[id] = k
	end
	return k
end

-- buf, len -> what the Rust primitive takes (the cdata, a string, or the
-- address of pointer cdata), and the length. `recv`: a string is refused.
local function bufarg(func, pos, buf, len, recv)
	local t = type(buf)
	if len ~= nil and (type(len) ~= 'number' or not (len >= 0 and len < 2^53)
		or len % 1 ~= 0)
	then
		argerr(func, pos + 1, 'len', 'non-negative integer expected', 1)
	end
	if t == 'string' and not recv then
		if not len then return buf, #buf end
		if len > #buf then argerr(func, pos + 1, 'len', 'length exceeds the string', 1) end
		return buf, len
	elseif t == 'cdata' then
		if kind_of(buf) == 'pointer' then
			if not len then argerr(func, pos + 1, 'len', 'a length is required with pointer cdata', 1) end
			if buf == nil then argerr(func, pos, 'buf', 'NULL pointer', 1) end
			return tonumber(ffi.cast(uintptr, buf)), len
		end
		local size = ffi.sizeof(buf)
		if not len then return buf, size end
		if len > size then
			argerr(func, pos + 1, 'len', ('%d exceeds the buffer size %d'):format(len, size), 1)
		end
		return buf, len
	end
	argerr(func, pos, 'buf', (recv and 'cdata' or 'string or cdata') .. ' expected, got ' .. t, 1)
end

-- The seed's send/recv `flags` (MSG_*): none is supported yet, 0 is accepted.
local function flagsarg(func, pos, flags)
	if flags ~= nil and flags ~= 0 then
		argerr(func, pos, 'flags', 'no send/recv flags are supported; pass nil or 0', 1)
	end
end

local function expiresarg(func, pos, expires)
	if expires ~= nil and type(expires) ~= 'number' then
		argerr(func, pos, 'expires', 'number expected', 1)
	elseif expires ~= expires then
		argerr(func, pos, 'expires', 'NaN', 1)
	end
end

-- sockets -----------------------------------------------------------------------

local socket = {} -- methods shared by tcp, udp, raw
local tcp = setmetatable({}, {__index = socket})
local udp = setmetatable({}, {__index = socket})
local raw = setmetatable({}, {__index = udp})
local mts = {
	tcp = {__index = tcp, __name = 'sock.tcp'},
	udp = {__index = udp, __name = 'sock.udp'},
	raw = {__index = raw, __name = 'sock.raw'},
}
for name, mt in pairs(mts) do
	mt.__tostring = function(self) return 'sock.' .. name .. ' (' .. tostring(self._s:fd()) .. ')' end
end

local function wrap(kind, s)
	return setmetatable({_s = s}, mts[kind])
end

local function maker(kind)
	return function(family, protocol)
		local s, err, code, msg = R.socket(kind, family, protocol)
		if not s then return nil, err, code, msg end
		return wrap(kind, s)
	end
end

M.tcp = maker'tcp'
M.udp = maker'udp'
M.raw = maker'raw'

local function self_s(self, func)
	local s = type(self) == 'table' and self._s
	if not s then argerr(func, 1, 'self', 'socket expected', 1) end
	return s
end

function socket:type() return self_s(self, 's:type'):type() end
function socket:family() return self_s(self, 's:family'):family() end
function socket:protocol() return self_s(self, 's:protocol'):protocol() end
function socket:close() return self_s(self, 's:close'):close() end
function socket:closed() return self_s(self, 's:closed'):closed() end
function socket:getsockname() return self_s(self, 's:getsockname'):local_addr() end
function socket:getpeername() return self_s(self, 's:getpeername'):peer_addr() end
function socket:setopt(opt, val) return self_s(self, 's:setopt'):setopt(opt, val) end
function socket:getopt(opt) return self_s(self, 's:getopt'):getopt(opt) end

--- s:bind([host], [port], [af])
function socket:bind(host, port, af)
	return self_s(self, 's:bind'):bind(host, port, af)
end

--- s:send(s|buf, [len], [expires]) -> len
function socket:send(buf, len, expires, flags)
	local s = self_s(self, 's:send')
	buf, len = bufarg('s:send', 2, buf, len)
	expiresarg('s:send', 4, expires)
	flagsarg('s:send', 5, flags)
	while true do
		local n, err, code, msg = s:try_send(buf, len)
		if n then return n end
		if n == nil then return nil, err, code, msg end
		local ok, err, code, msg = wait(s, WRITE, expires)
		if not ok then return nil, err, code, msg end
	end
end

--- s:recv(buf, len, [expires]) -> len (0 at end of stream for TCP)
function socket:recv(buf, len, expires, flags)
	local s = self_s(self, 's:recv')
	if len == nil then argerr('s:recv', 3, 'len', 'number expected') end
	buf, len = bufarg('s:recv', 2, buf, len, true)
	expiresarg('s:recv', 4, expires)
	flagsarg('s:recv', 5, flags)
	while true do
		local n, err, code, msg, done = s:try_recv(buf, len)
		if n then return n end
		if n == nil then return nil, err, code, msg, done end
		local ok, err, code, msg = wait(s, READ, expires)
		if not ok then return nil, err, code, msg end
	end
end

-- tcp -------------------------------------------------------------------------

--- tcp:connect(host, port, [expires], [af]): every resolved address in
--- turn, under the one deadline.
function tcp:connect(host, port, expires, af)
	local s = self_s(self, 'tcp:connect')
	expiresarg('tcp:connect', 4, expires)
	local ai, err, code, msg = s:resolve(host, port, af)
	if not ai then return nil, err, code, msg end
	local addrs = ai.addrs and ai:addrs() or function() local a = ai; ai = nil; return a end
	for a in addrs do
		while true do
			local done, e, c, m = s:try_connect(a)
			if done then return true end
			if done == nil then
				if e == 'try_again' then -- a full Unix backlog: try again shortly
					local ok, e2, c2, m2 = wait(nil, nil, R.clock() + 0.001)
					if ok == nil and e2 then return nil, e2, c2, m2 end
					if expires and R.clock() >= expires then return nil, 'timeout', 0, 'operation timed out' end
				else
					err, code, msg = e, c, m
					break
				end
			else
				local ok, e2, c2, m2 = wait(s, WRITE, expires)
				if not ok then return nil, e2, c2, m2 end
			end
		end
	end
	return nil, err, code, msg
end

--- tcp:listen([backlog, ]host, port, [af])
function tcp:listen(backlog, host, port, af)
	local s = self_s(self, 'tcp:listen')
	if type(backlog) ~= 'number' then
		backlog, host, port, af = nil, backlog, host, port
	end
	return s:listen(backlog, host, port, af)
end

--- tcp:accept([expires]) -> ctcp, remote_addr, local_addr
function tcp:accept(expires)
	local s = self_s(self, 'tcp:accept')
	expiresarg('tcp:accept', 2, expires)
	while true do
		local c, remote, loc, msg = s:try_accept()
		if c then return wrap('tcp', c), remote, loc end
		if c == nil then return nil, remote, loc, msg end
		local ok, err, code, m = wait(s, READ, expires)
		if not ok then return nil, err, code, m end
	end
end

--- tcp:sendall(s|buf, [len], [expires]) -> true | nil, err, code, msg, sent
function tcp:sendall(buf, len, expires)
	local s = self_s(self, 'tcp:sendall')
	if s:closed() then argerr('tcp:sendall', 1, 'self', 'socket is closed') end
	buf, len = bufarg('tcp:sendall', 2, buf, len)
	expiresarg('tcp:sendall', 4, expires)
	local base -- the address of buf, computed on the rare second pass
	local done = 0
	while done < len do
		local n, err, code, msg
		if done == 0 then
			n, err, code, msg = s:try_send(buf, len)
		else
			base = base or (type(buf) == 'number' and buf
				or tonumber(ffi.cast(uintptr, ffi.cast('const char*', buf))))
			n, err, code, msg = s:try_send(base + done, len - done)
		end
		if n then
			done = done + n
		elseif n == nil then
			return nil, err, code, msg, done
		else
			local ok, e, c, m = wait(s, WRITE, expires)
			if not ok then return nil, e, c, m, done end
		end
	end
	return true
end

--- tcp:recvall(buf, len, [expires]) -> true | nil, err, code, msg, received
function tcp:recvall(buf, len, expires)
	local s = self_s(self, 'tcp:recvall')
	if s:closed() then argerr('tcp:recvall', 1, 'self', 'socket is closed') end
	if len == nil then argerr('tcp:recvall', 3, 'len', 'number expected') end
	buf, len = bufarg('tcp:recvall', 2, buf, len, true)
	expiresarg('tcp:recvall', 4, expires)
	local base = type(buf) == 'number' and buf or tonumber(ffi.cast(uintptr, buf))
	local done = 0
	while done < len do
		local n, err, code, msg = s:try_recv(done == 0 and buf or base + done, len - done)
		if n == 0 then
			return nil, 'eof', 0, 'end of stream before all bytes were received', done
		elseif n then
			done = done + n
		elseif n == nil then
			return nil, err, code, msg, done
		else
			local ok, e, c, m = wait(s, READ, expires)
			if not ok then return nil, e, c, m, done end
		end
	end
	return true
end

--- tcp:shutdown('r'|'w'|'rw', [expires])
function tcp:shutdown(how)
	return self_s(self, 'tcp:shutdown'):shutdown(how)
end

-- udp, raw --------------------------------------------------------------------

--- udp:connect(host, port, [expires], [af]); ('*', 0) removes the filter.
function udp:connect(host, port, expires, af)
	expiresarg('udp:connect', 4, expires)
	return self_s(self, 'udp:connect'):connect_datagram(host, port, af)
end

--- udp:sendto(host, port, s|buf, [len], [expires], [flags], [af]) -> len
function udp:sendto(host, port, buf, len, expires, flags, af)
	local s = self_s(self, 'udp:sendto')
	buf, len = bufarg('udp:sendto', 4, buf, len)
	expiresarg('udp:sendto', 6, expires)
	flagsarg('udp:sendto', 7, flags)
	while true do
		local n, err, code, msg = s:try_sendto(host, port, buf, len, af)
		if n then return n end
		if n == nil then return nil, err, code, msg end
		local ok, e, c, m = wait(s, WRITE, expires)
		if not ok then return nil, e, c, m end
	end
end

--- udp:recvnext(buf, len, [expires], [flags]) -> len, sa
function udp:recvnext(buf, len, expires, flags)
	local s = self_s(self, 'udp:recvnext')
	if len == nil then argerr('udp:recvnext', 3, 'len', 'number expected') end
	buf, len = bufarg('udp:recvnext', 2, buf, len, true)
	expiresarg('udp:recvnext', 4, expires)
	flagsarg('udp:recvnext', 5, flags)
	while true do
		local n, sa, code, msg, done = s:try_recvnext(buf, len)
		if n then return n, sa end
		if n == nil then return nil, sa, code, msg, done end
		local ok, e, c, m = wait(s, READ, expires)
		if not ok then return nil, e, c, m end
	end
end
