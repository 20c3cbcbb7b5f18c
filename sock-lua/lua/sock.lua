-- sock/sock.lua: threads, sockets and the blocking calls of the seed API.
-- Called by the module's loader as chunk(M, R): M is the module table being
-- built, R the Rust primitives (src/sched.rs, src/socket.rs).
--
-- Every blocking call is a core operation (src/socket/op.rs): its first step
-- is one call into Rust (send, recv, sendall, recvall: through the FFI fast
-- path of src/socket/fast.rs; the rest: a method of the socket userdata),
-- which returns the results, or PENDING when the call would block. Then this
-- layer yields `OP, expires` to the scheduler, which drives the call with the
-- core's driver (its waits, deadline, retries) and resumes the thread with
-- the call's results. What is left here: the argument checks and the yield.
local M, R = ...

local ffi = require'ffi'
local yield, running, create = coroutine.yield, coroutine.running, coroutine.create
-- The standard coroutine.resume and wrap (this chunk replaces the globals;
-- R keeps the originals for every load of the module in this state).
local co_resume, co_wrap = R.co_resume, R.co_wrap
local type, error, select, tonumber, setmetatable = type, error, select, tonumber, setmetatable
local unpack = unpack
local traceback, xpcall = debug.traceback, xpcall

local OP, SLEEP, TRANSFER, FAILED, JOIN = R.OP, R.SLEEP, R.TRANSFER, R.FAILED, R.JOIN
local SUSPEND, JOBSLEEP = R.SUSPEND, R.JOBSLEEP
local PENDING = R.PENDING

-- The coroutines that sock threads are running now: the threads, and the
-- generators they resumed through the trampoline, until those yield back.
-- Their yields belong to the scheduler, so their I/O may wait and nobody else
-- may resume them. Weak keys: an abandoned one is garbage. One set per Lua
-- state, shared by every load of the module.
local active = R.active
local NOT_SUSPENDED = R.NOT_SUSPENDED

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

-- The end of every blocking call whose first step would block: the yield
-- that has the scheduler drive the state's pending call, which resumes this
-- thread with the call's results. Outside sock threads: not_in_thread (and
-- the pending call is dropped).
local not_in_thread = R.not_in_thread

local function pending(expires)
	if not in_thread() then return not_in_thread(true) end
	return yield(OP, expires)
end
R.pending = pending -- (for lua/tls.lua)

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

-- The functions to call when a thread ends (sock.onthreadfinish), by thread.
local finishers = setmetatable({}, {__mode = 'k'})

local function finish(co, ok, ...)
	active[co] = nil
	local fs = finishers[co]
	if fs then
		finishers[co] = nil
		for i = 1, #fs do
			local fok, e = pcall(fs[i], co)
			if not fok then R.report(e, co) end
		end
	end
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

-- The body of every thread: f(...) under xpcall (one function for all
-- threads, f comes as the first argument: no closure per thread). Its first
-- resume, by newthread, only puts f and its arguments in place: the
-- scheduler's resumes, the start among them, then carry no values.
local function body(f, ...)
	yield()
	return finish(running(), xpcall(f, with_traceback, ...))
end

-- This module load's error reporter, by number (src/sched.rs).
local REPORTER = R.reporter(R.report)

local function spawn(func, f, ...)
	-- (depth 0: the callers' tail calls leave no frame of their own)
	if type(f) ~= 'function' then argerr(func, 1, 'func', 'function expected') end
	local co = create(body)
	co_resume(co, f, ...)
	active[co] = true
	R.spawn(co, REPORTER)
	return co
end

--- sock.newthread(f, ...) -> co: starts f(...) as a sock thread, at once;
--- returns at its first blocking call.
function M.newthread(f, ...) return spawn('sock.newthread', f, ...) end

--- sock.thread(f, ...) -> co: the later versions' name of newthread (the
--- seed's semantics: it starts at once).
function M.thread(f, ...) return spawn('sock.thread', f, ...) end

--- sock.onthreadfinish(co, f): f(co) when the thread co ends, however it
--- ends; several run in the order they were set.
function M.onthreadfinish(co, f)
	if type(co) ~= 'thread' then argerr('sock.onthreadfinish', 1, 'co', 'thread expected') end
	if type(f) ~= 'function' then argerr('sock.onthreadfinish', 2, 'f', 'function expected') end
	local fs = finishers[co]
	if not fs then fs = {}; finishers[co] = fs end
	fs[#fs + 1] = f
end

--- sock.threadenv[co]: a value of the program's choice per thread (weak keys).
M.threadenv = setmetatable({}, {__mode = 'k'})

--- sock.currentthread() -> co: the running sock thread, or nil.
function M.currentthread()
	local co = running()
	return co and active[co] and co or nil
end

local function timeoutarg(func, timeout)
	if timeout ~= nil and type(timeout) ~= 'number' then
		argerr(func, 1, 'timeout', 'number expected', 1)
	end
end

--- sock.poll([timeout]) -> true | false, 'timeout' | false, 'empty'
function M.poll(timeout)
	timeoutarg('sock.poll', timeout)
	return R.poll(timeout)
end

--- sock.start([timeout]) -> true | false, 'timeout': runs the loop until
--- every thread and timer is done or sock.stop(); with a timeout, for at
--- most that many seconds.
function M.start(timeout)
	timeoutarg('sock.start', timeout)
	return R.start(timeout)
end

M.stop = R.stop
M.clock = R.clock
-- Test hook: delays every lookup made off the loop by s seconds (process-wide).
M._lookup_delay = R.lookup_delay

-- suspend, resume, transfer ---------------------------------------------------

local function pack(...) return {n = select('#', ...), ...} end

-- The values that sock.resume / sock.transfer pass to a suspended thread, by
-- the coroutine that suspended (weak keys: a thread that never runs again
-- leaves nothing behind).
local resumed_with = setmetatable({}, {__mode = 'k'})
-- The values of the last sock.suspend, for the sock.resume that ran it
-- (resume reads them as soon as the thread it ran blocks).
local handed

local function resumed(co)
	local a = resumed_with[co]
	resumed_with[co] = nil
	if a then return unpack(a, 1, a.n) end
end

--- sock.suspend(...) -> ...: parks this thread until sock.resume(co, ...),
--- whose values it returns; its own values go to that resume's caller.
function M.suspend(...)
	local co = running()
	if not (co and active[co]) then return not_in_thread(false) end
	handed = pack(...)
	yield(SUSPEND)
	return resumed(co)
end

--- sock.resume(co, ...) -> ...: runs the suspended thread co now, until it
--- next blocks or ends; returns the values it passed to sock.suspend
--- (nothing if it blocked on something else). Raises if co is not parked in
--- sock.suspend.
function M.resume(co, ...)
	if type(co) ~= 'thread' then argerr('sock.resume', 1, 'co', 'thread expected') end
	resumed_with[co] = pack(...)
	handed = nil
	local ok, why = R.resume(co)
	if not ok then
		resumed_with[co] = nil
		error('sock.resume: ' .. why, 2)
	end
	local h = handed
	handed = nil
	if h then return unpack(h, 1, h.n) end
end

--- sock.transfer(co, ...) -> ...: parks this thread and runs the suspended
--- thread co with the values, without coming back; returns what the
--- sock.resume or sock.transfer that wakes this thread passes.
function M.transfer(co, ...)
	if type(co) ~= 'thread' then argerr('sock.transfer', 1, 'co', 'thread expected') end
	local me = running()
	if not (me and active[me]) then return not_in_thread(false) end
	if not R.suspended(co) then
		error('sock.transfer: the thread is not suspended (it runs, waits for I/O '
			.. 'or a time, or has finished)', 2)
	end
	resumed_with[co] = pack(...)
	local ok, err, code, msg = yield(SUSPEND, co)
	if err then return ok, err, code, msg end
	return resumed(me)
end

-- sleep jobs -------------------------------------------------------------------

local sleep_job = {}
local sleep_job_mt = {__index = sleep_job, __name = 'sock.sleep_job'}

--- sock.sleep_job() -> sj: a sleep that another thread can cut short.
function M.sleep_job()
	return setmetatable({_j = R.sleep_job()}, sleep_job_mt)
end

local function self_job(self, func)
	local j = type(self) == 'table' and self._j
	if not j then argerr(func, 1, 'self', 'sleep job expected', 1) end
	return j
end

--- sj:sleep_until(t) -> ...: sleeps until sock.clock() reaches t, unless
--- sj:wakeup(...) comes first: then it returns the wakeup's values.
function sleep_job:sleep_until(t)
	local j = self_job(self, 'sj:sleep_until')
	if type(t) ~= 'number' then argerr('sj:sleep_until', 2, 't', 'number expected') end
	if t ~= t then argerr('sj:sleep_until', 2, 't', 'NaN') end
	if not in_thread() then return not_in_thread(false) end
	if j:sleeping() then error('sj:sleep_until: another thread sleeps on this job', 2) end
	self._woken = nil
	local woken, err, code, msg = yield(JOBSLEEP, j, t)
	if err then return nil, err, code, msg end
	if woken then
		local v = self._woken
		self._woken = nil
		if v then return unpack(v, 1, v.n) end
	end
end

--- sj:sleep(s) -> ...: sj:sleep_until(sock.clock() + s).
function sleep_job:sleep(s)
	self_job(self, 'sj:sleep')
	if type(s) ~= 'number' then argerr('sj:sleep', 2, 's', 'number expected') end
	if s ~= s then argerr('sj:sleep', 2, 's', 'NaN') end
	return self.sleep_until(self, R.clock() + s)
end

--- sj:wakeup(...) -> true | false: ends the sleep in progress early (its
--- sleep returns the values); false when no thread sleeps on the job.
function sleep_job:wakeup(...)
	local j = self_job(self, 'sj:wakeup')
	if not j:sleeping() then return false end
	self._woken = pack(...)
	return j:wakeup()
end

-- timers -------------------------------------------------------------------------

-- The functions of the pending timers, by number (src/timers.rs): strong, a
-- pending timer is alive whether or not the program keeps its object.
local timer_funcs = {}
local timer_n = 0

-- The coroutine of a run of timer n, placed as newthread places one (not
-- started): the job runs it as a sock thread. `once`: the timer is then over.
R.set_timer_thread(REPORTER, function(n, once)
	local f = timer_funcs[n]
	if not f then return nil end
	if once then timer_funcs[n] = nil end
	local co = create(body)
	co_resume(co, f)
	active[co] = true
	return co
end)

local timer = {}
local timer_mt = {__index = timer, __name = 'sock.timer'}

local function new_timer(func, make, t, f, every)
	-- (depth 0: the callers' tail calls leave no frame of their own)
	if type(f) ~= 'function' then argerr(func, 2, 'f', 'function expected') end
	timer_n = timer_n + 1
	local n = timer_n
	local tm = setmetatable({_n = n}, timer_mt)
	if every then
		timer_funcs[n] = function()
			if f() == false then tm:cancel() end
		end
	else
		timer_funcs[n] = f
	end
	tm._t = make(t, n, REPORTER)
	return tm
end

local function timearg(func, name, t)
	if type(t) ~= 'number' then argerr(func, 1, name, 'number expected', 1) end
	if t ~= t then argerr(func, 1, name, 'NaN', 1) end
end

--- sock.runat(t, f) -> tm: runs f() in a new sock thread when sock.clock()
--- reaches t.
function M.runat(t, f)
	timearg('sock.runat', 't', t)
	return new_timer('sock.runat', R.runat, t, f)
end

--- sock.runafter(s, f) -> tm: runs f() in a new sock thread s seconds from now.
function M.runafter(s, f)
	timearg('sock.runafter', 's', s)
	return new_timer('sock.runafter', R.runat, R.clock() + s, f)
end

--- sock.runevery(s, f) -> tm: runs f() in a new sock thread every s seconds
--- (runs never overlap) until tm:cancel() or until f returns false.
function M.runevery(s, f)
	timearg('sock.runevery', 's', s)
	if not (s > 0 and s < math.huge) then
		argerr('sock.runevery', 1, 's', 'a positive number of seconds expected')
	end
	return new_timer('sock.runevery', R.runevery, s, f, true)
end

--- tm:cancel() -> true | false: the timer runs no more (a run in progress
--- goes on); false when it had already run (or been cancelled).
function timer:cancel()
	local t = type(self) == 'table' and self._t
	if not t then argerr('tm:cancel', 1, 'self', 'timer expected') end
	timer_funcs[self._n] = nil
	return t:cancel()
end

--- tm:pending() -> true | false: whether the timer is still to run (or repeating).
function timer:pending()
	local t = type(self) == 'table' and self._t
	if not t then argerr('tm:pending', 1, 'self', 'timer expected') end
	return t:pending()
end

--- sock.sleep_until(t): sleeps until sock.clock() reaches t.
function M.sleep_until(t)
	if type(t) ~= 'number' then argerr('sock.sleep_until', 1, 't', 'number expected') end
	if t ~= t then argerr('sock.sleep_until', 1, 't', 'NaN') end
	if not in_thread() then return not_in_thread(false) end
	local ok, err, code, msg = yield(SLEEP, t)
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

-- OS threads ----------------------------------------------------------------------

-- The handle of an OS thread: {_t = the Rust handle (src/osthread.rs)}.
local osthread = {}
local osthread_mt = {__index = osthread, __name = 'sock.osthread'}
osthread_mt.__tostring = function(self) return 'sock.osthread (' .. tostring(self._t) .. ')' end

--- sock.osthread(f | code, ...) -> t: runs f (a function without upvalues:
--- its bytecode is copied) or code (Lua source) with the arguments (nil,
--- booleans, numbers, strings) in a new OS thread, in a new Lua state with
--- sock loaded, whose loop shares this one's poller.
function M.osthread(code, ...)
	local name
	if type(code) == 'function' then
		local info = debug.getinfo(code, 'S')
		if info.what == 'C' then
			argerr('sock.osthread', 1, 'f', 'a C function cannot cross OS threads')
		end
		if debug.getupvalue(code, 1) ~= nil then
			argerr('sock.osthread', 1, 'f', 'a function with upvalues cannot cross OS threads '
				.. '(pass the values as arguments)')
		end
		name = info.short_src .. ':' .. info.linedefined
		code = string.dump(code)
	elseif type(code) == 'string' then
		name = 'sock.osthread'
	else
		argerr('sock.osthread', 1, 'f', 'function or string expected, got ' .. type(code))
	end
	return setmetatable({_t = R.osthread(code, name, ...)}, osthread_mt)
end

--- t:join() -> true, results... | false, err: waits for the OS thread to end
--- (inside a sock thread, only that thread waits).
function osthread:join()
	local t = type(self) == 'table' and self._t
	if not t then argerr('t:join', 1, 'self', 'OS thread expected') end
	if in_thread() and not t:done() then
		yield(JOIN, t)
		return t:outcome()
	end
	return t:join_blocking()
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
--- (sock.cosafewrap: the name the code of the seed's date used.)
function M.cowrap(f)
	if type(f) ~= 'function' then argerr('sock.cowrap', 1, 'f', 'function expected') end
	local co = create(f)
	return function(...)
		if not in_thread() then return unwrap(resume(co, ...)) end
		return unwrap(transfer(co, ...))
	end
end

M.cosafewrap = M.cowrap

--- sock.yield(...): yields from an iterator made by sock.cowrap to its
--- consumer (coroutine.yield, under the later versions' name).
M.yield = yield

--- sock.run(f, ...) -> ...: f(...) in a sock thread, the loop driven until it
--- ends, and its results (its error raised again); inside a thread, f(...).
function M.run(f, ...)
	if type(f) ~= 'function' then argerr('sock.run', 1, 'f', 'function expected') end
	if in_thread() then return f(...) end
	local res
	local function run(...) res = {n = select('#', ...), ...} end
	M.newthread(function(...) run(pcall(f, ...)) end, ...)
	while not res do
		local ok, err = R.poll(nil)
		if not ok and err == 'empty' then break end
	end
	if not res then error('sock.run: the thread ended without finishing f', 2) end
	if not res[1] then error(res[2], 0) end
	return unpack(res, 2, res.n)
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

-- Buffers go to the FFI fast path (src/socket/fast.rs) as what FFI converts to a
-- `const void *`: a string (its bytes), an array or a struct (its address), a
-- pointer (its value). Boxed scalars (`ffi.new'int64_t'`), which FFI does not
-- convert to a pointer, go by the address of their payload (R.address).
local uintptr = ffi.typeof'uintptr_t'
local bytep = ffi.typeof'const uint8_t *'
local kinds = {} -- ctype id -> 'pointer' | 'array' | 'vla' | 'ref' | 'struct' | 'scalar'

local function kind_of(buf)
	local id = tonumber(ffi.typeof(buf))
	local k = kinds[id]
	if not k then
		-- By the outermost declarator of the type's name: `T *`, `T (*)[n]`
		-- are pointers; `T &`, `T (&)[n]` references; `T *[n]` an array.
		local name = tostring(ffi.typeof(buf))
		k = (name:find('*>', 1, true) or name:find('(*)', 1, true)) and 'pointer'
			or (name:find('&>', 1, true) or name:find('(&)', 1, true)) and 'ref'
			or name:find('[?]>', 1, true) and 'vla'
			or name:find(']>', 1, true) and 'array'
			or (name:find('^ctype<struct') or name:find('^ctype<union')) and 'struct'
			or 'scalar'
		kinds[id] = k
	end
	return k
end

-- The sizes of variable-length arrays: `ffi.sizeof` of a VLA is not compiled
-- (the trace aborts, and after a few aborts the calling function is
-- blacklisted: every send and recv would run in the interpreter). Weak keys:
-- an entry goes with its buffer.
local vla_sizes = setmetatable({}, {__mode = 'k'})

local function sizeof(buf, k)
	if k ~= 'vla' then return ffi.sizeof(buf) end
	local size = vla_sizes[buf]
	if not size then
		size = ffi.sizeof(buf)
		vla_sizes[buf] = size
	end
	return size
end

-- buf, len -> the buffer for the fast path (see above) and the length.
-- `recv`: a string is refused.
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
		local k = kind_of(buf)
		if k == 'pointer' then
			if not len then argerr(func, pos + 1, 'len', 'a length is required with pointer cdata', 1) end
			if buf == nil then argerr(func, pos, 'buf', 'NULL pointer', 1) end
			return buf, len
		end
		local size = sizeof(buf, k)
		if len and len > size then
			argerr(func, pos + 1, 'len', ('%d exceeds the buffer size %d'):format(len, size), 1)
		end
		if k == 'scalar' then buf = ffi.cast(bytep, R.address(buf)) end
		return buf, len or size
	end
	argerr(func, pos, 'buf', (recv and 'cdata' or 'string or cdata') .. ' expected, got ' .. t, 1)
end

-- A buffer from bufarg, as the mlua methods (sendto, recvnext) take
-- it: a string, array or struct cdata (lua_topointer is its address), or an
-- address as a number.
-- The calls that take a buffer's address (R's, not the userdata's: see
-- src/socket/mod.rs, register_buffer_calls).
local R_sendto, R_read_until, R_recvnext = R.sendto, R.read_until, R.recvnext

local function mlua_buf(buf)
	if type(buf) == 'cdata' then
		local k = kind_of(buf)
		if k == 'pointer' or k == 'ref' then
			return tonumber(ffi.cast(uintptr, ffi.cast(bytep, buf)))
		end
	end
	return buf
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

-- A socket object is a table {_s = the Rust userdata (src/socket/mod.rs),
-- _h = its handle}: a number naming the socket in this state's handle table
-- (T, src/handles.rs), which Rust checks on every call (a handle that names
-- no live socket acts as a closed socket).
--
-- The fast path: the first steps of send, recv, sendall and recvall as FFI
-- calls (compiled by the JIT to plain calls), each returning n >= 0 (bytes,
-- or 0 for sendall/recvall: done), PENDING (yield), CLOSED (nil, 'closed'), or
-- FAILED: R.failed(func) then gives nil, err, code, msg[, done].
local T = ffi.cast('void *', R.sockets)
local fast_io = ffi.typeof'int (*)(void *, uint64_t, const void *, size_t)'
local fast_send = ffi.cast(fast_io, R.fast.send)
local fast_recv = ffi.cast(fast_io, R.fast.recv)
local fast_sendall = ffi.cast(fast_io, R.fast.sendall)
local fast_recvall = ffi.cast(fast_io, R.fast.recvall)
local FAST_PENDING, CLOSED = R.fast.PENDING, R.fast.CLOSED
local failed = R.failed

-- The result of a call on a closed socket (closed before, by this thread or
-- another): nil, 'closed', 0, msg, as the mlua methods return it.
local closed = R.closed

-- The result r of a fast-path call: n, the pending call's results, or the
-- failure. (A function of its own: the code right after a resume runs in
-- the interpreter until it calls compiled code, so the common case, r >= 0,
-- is tested inline by the callers first.)
local function fast_result(func, r, expires)
	if r == FAST_PENDING then return pending(expires) end
	if r == CLOSED then return closed() end
	return failed(func)
end

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

-- Every socket userdata's environment: mlua gives each userdata a new empty
-- table as its environment (Lua 5.1 has no user values), 64 bytes that a
-- socket would hold as long as it lives; this one table serves them all
-- (the module never uses a userdata's environment).
local SHARED_ENV = {}
local setfenv = debug.setfenv

-- s: the userdata, h: its handle (R.socket and accept give both).
local function wrap(kind, s, h)
	setfenv(s, SHARED_ENV)
	return setmetatable({_s = s, _h = h}, mts[kind])
end

local function maker(kind)
	return function(family, protocol)
		local s, err, code, msg = R.socket(kind, family, protocol)
		if not s then return nil, err, code, msg end
		return wrap(kind, s, err)
	end
end

M.tcp = maker'tcp'
M.udp = maker'udp'
M.raw = maker'raw'

-- The method tables, for a program to add methods to every socket of a kind,
-- and the fields that tell socket objects apart (the later versions' names).
M.tcp_class, M.udp_class, M.raw_class = tcp, udp, raw
socket.issocket = true
tcp.istcpsocket = true
udp.isudpsocket = true
raw.israwsocket, raw.isudpsocket = true, false

local function self_s(self, func)
	local s = type(self) == 'table' and self._s
	if not s then argerr(func, 1, 'self', 'socket expected', 1) end
	return s
end

function socket:type() return self_s(self, 's:type'):type() end
function socket:family() return self_s(self, 's:family'):family() end
function socket:protocol() return self_s(self, 's:protocol'):protocol() end
local resolving -- (below: the lookups in flight, by socket)
local fast_close = ffi.cast('int (*)(void *, uint64_t)', R.fast.close)
function socket:close()
	local s = self_s(self, 's:close')
	local lk = resolving[s]
	if lk then resolving[s] = nil; lk:cancel() end
	fast_close(T, self._h)
	return true
end
function socket:closed() return self_s(self, 's:closed'):closed() end
function socket:getsockname() return self_s(self, 's:getsockname'):local_addr() end
function socket:getpeername() return self_s(self, 's:getpeername'):peer_addr() end
-- setopt of a flag or an integer through the fast path, by the option's
-- index (kept by name: only the names of such options are kept, a bounded
-- set); anything else, and the usage errors (SLOW), through the mlua method.
local fast_setopt = ffi.cast('int (*)(void *, uint64_t, int, int, int)', R.fast.setopt)
local opt_index, SLOW = R.opt_index, R.fast.SLOW
local opt_indexes = {}
function socket:setopt(opt, val)
	local s = self_s(self, 's:setopt')
	local i = opt_indexes[opt]
	if i == nil and type(opt) == 'string' then
		i = opt_index(opt)
		if i then opt_indexes[opt] = i end
	end
	if i then
		local r
		if val == true or val == false then
			r = fast_setopt(T, self._h, i, val and 1 or 0, 1)
		elseif type(val) == 'number' and val % 1 == 0 and val >= -2^31 and val < 2^31 then
			r = fast_setopt(T, self._h, i, val, 0)
		end
		if r == 0 then return true end
		if r == CLOSED then return closed() end
		if r and r ~= SLOW then return failed('s:setopt') end
	end
	return s:setopt(opt, val)
end
function socket:getopt(opt) return self_s(self, 's:getopt'):getopt(opt) end

-- Calls that take a host: Rust answers R.LOOKUP, lk for a host name, which
-- is looked up (off the loop inside a thread: lua/addr.lua), and the call is
-- made again with the ai. A lookup's timeout is the call's deadline passing:
-- the socket is closed (the seed's deadline).
local LOOKUP, looked_up = R.LOOKUP, R.looked_up

-- The lookups in flight, by socket: closing the socket ends the wait with
-- 'closed' (socket:close).
resolving = setmetatable({}, {__mode = 'k'})

local function lookup(s, expires, a, lk)
	resolving[s] = lk
	local ai, err, code, msg = looked_up(expires, a, lk)
	resolving[s] = nil
	if not ai and err == 'timeout' then s:close() end
	return ai, err, code, msg
end

--- s:bind([host], [port], [af])
local sa_arg = R.sa_arg

function socket:bind(host, port, af)
	local s = self_s(self, 's:bind')
	if type(host) == 'cdata' then host = sa_arg(host) end
	local a, b, c, d = s:bind(host, port, af)
	if a ~= LOOKUP then return a, b, c, d end
	local ai, err, code, msg = lookup(s, nil, a, b)
	if not ai then return nil, err, code, msg end
	return s:bind(ai, nil, af)
end

-- The blocking calls: the first step, and on PENDING the yield.

--- s:send(s|buf, [len], [expires]) -> len
function socket:send(buf, len, expires, flags)
	self_s(self, 's:send')
	local b, n = bufarg('s:send', 2, buf, len)
	expiresarg('s:send', 4, expires)
	flagsarg('s:send', 5, flags)
	local r = fast_send(T, self._h, b, n)
	if r >= 0 then return r end
	return fast_result('s:send', r, expires)
end

--- s:recv(buf, len, [expires]) -> len (0 at end of stream for TCP)
function socket:recv(buf, len, expires, flags)
	self_s(self, 's:recv')
	if len == nil then argerr('s:recv', 3, 'len', 'number expected') end
	local b, n = bufarg('s:recv', 2, buf, len, true)
	expiresarg('s:recv', 4, expires)
	flagsarg('s:recv', 5, flags)
	local r = fast_recv(T, self._h, b, n)
	if r >= 0 then return r end
	return fast_result('s:recv', r, expires)
end

-- The rest: an mlua method makes the first step, with its results, PENDING,
-- or nil, err, code, msg.
local function blocking(expires, a, ...)
	if a == PENDING then return pending(expires) end
	return a, ...
end

-- tcp -------------------------------------------------------------------------

--- tcp:connect(host, port, [expires], [af]): every resolved address in
--- turn, under the one deadline.
local function connect_to(s, expires, af, a, ...)
	if a ~= LOOKUP then return blocking(expires, a, ...) end
	local ai, err, code, msg = lookup(s, expires, a, ...)
	if not ai then return nil, err, code, msg end
	return blocking(expires, s:connect(ai, nil, af))
end

function tcp:connect(host, port, expires, af)
	local s = self_s(self, 'tcp:connect')
	expiresarg('tcp:connect', 4, expires)
	if type(host) == 'cdata' then host = sa_arg(host) end
	return connect_to(s, expires, af, s:connect(host, port, af))
end

--- tcp:listen([backlog, ]host, port, [af])
function tcp:listen(backlog, host, port, af)
	local s = self_s(self, 'tcp:listen')
	if type(backlog) ~= 'number' then
		backlog, host, port, af = nil, backlog, host, port
	end
	if type(host) == 'cdata' then host = sa_arg(host) end
	local a, b, c, d = s:listen(backlog, host, port, af)
	if a ~= LOOKUP then return a, b, c, d end
	local ai, err, code, msg = lookup(s, nil, a, b)
	if not ai then return nil, err, code, msg end
	return s:listen(backlog, ai, nil, af)
end

-- tcp:accept: the first step through the fast path (fast_accept), which
-- leaves the new connection in the table and writes its remote address's
-- bytes into a peer object (lua/addr.lua: an sa whose sa is made only when
-- a method needs it); a pending accept ends the same way, then fast_peer
-- writes them. R.take_accepted then makes the socket's userdata, taken
-- before any Lua code can run (nothing is allocated in between). It gives
-- the local address as nil when it is the one this listener's last accept
-- returned, kept here (by listener object, out of reach of other code): one
-- sa object for all its connections. An address that is neither IPv4 nor
-- IPv6 (fast_accept's 0) comes from R.take_accepted as an sa.
local fast_acc = ffi.typeof'int (*)(void *, uint64_t, void *)'
local fast_accept = ffi.cast(fast_acc, R.fast.accept)
local fast_peer = ffi.cast(fast_acc, R.fast.peer)
local take_accepted, peer_ct, NOT_TCP = R.take_accepted, R.peer_ct, R.fast.NOT_TCP
local last_local = setmetatable({}, {__mode = 'k'})

local tcp_mt = mts.tcp

--- tcp:accept([expires]) -> ctcp, remote_addr, local_addr
function tcp:accept(expires)
	self_s(self, 'tcp:accept')
	expiresarg('tcp:accept', 2, expires)
	local h = self._h
	local ra = peer_ct()
	local n = fast_accept(T, h, ra.b)
	if n < 0 then
		if n == NOT_TCP then argerr('tcp:accept', 1, 'self', 'not a TCP socket') end
		if n ~= FAST_PENDING then return fast_result('tcp:accept', n) end
		local ok, err, code, msg = pending(expires)
		if not ok then return nil, err, code, msg end
		n = fast_peer(T, h, ra.b)
		if n < 0 then return closed() end
	end
	local c, ch, loc, sa = take_accepted(h, n == 0)
	if not c then return c, ch, loc, sa end -- nil, 'closed', code, msg
	if loc then last_local[self] = loc else loc = last_local[self] end
	if n > 0 then ra.len = n else ra = sa end
	setfenv(c, SHARED_ENV) -- (as wrap does)
	return setmetatable({_s = c, _h = ch}, tcp_mt), ra, loc
end

--- tcp:sendall(s|buf, [len], [expires]) -> true | nil, err, code, msg, sent
function tcp:sendall(buf, len, expires)
	self_s(self, 'tcp:sendall')
	local h = self._h
	local b, n = bufarg('tcp:sendall', 2, buf, len)
	expiresarg('tcp:sendall', 4, expires)
	local r = fast_sendall(T, h, b, n)
	if r == 0 then return true end
	return fast_result('tcp:sendall', r, expires)
end

-- tcp:recvall([expires]): reads until the peer closes, into a buffer that
-- grows (doubling, from 64 KiB): buf, len | nil, err, buf, len.
local u8arr = ffi.typeof'uint8_t[?]'
local function recvall_grow(self, expires)
	local cap, len = 65536, 0
	local buf = u8arr(cap)
	while true do
		if len == cap then
			local bigger = u8arr(cap * 2)
			ffi.copy(bigger, buf, len)
			buf, cap = bigger, cap * 2
		end
		local n, err, code, msg = self.recv(self, buf + len, cap - len, expires)
		if not n then
			if err == 'closed' then return buf, len end
			return nil, err, buf, len
		end
		len = len + n
	end
end

--- tcp:recvall(buf, len, [expires]) -> true | nil, err, code, msg, received
--- tcp:recvall([expires]) -> buf, len | nil, err, buf, len: everything until
--- the peer closes (the later versions' form; told apart by the first
--- argument, a buffer or not).
function tcp:recvall(buf, len, expires)
	self_s(self, 'tcp:recvall')
	if buf == nil or type(buf) == 'number' then
		if len ~= nil then argerr('tcp:recvall', 2, 'buf', 'cdata expected, got ' .. type(buf)) end
		expiresarg('tcp:recvall', 2, buf)
		return recvall_grow(self, buf)
	end
	local h = self._h
	if len == nil then argerr('tcp:recvall', 3, 'len', 'number expected') end
	local b, n = bufarg('tcp:recvall', 2, buf, len, true)
	expiresarg('tcp:recvall', 4, expires)
	local r = fast_recvall(T, h, b, n)
	if r == 0 then return true end
	return fast_result('tcp:recvall', r, expires)
end

--- tcp:recvall_read([expires]) -> read | nil, err, buf, len: reads
--- everything as tcp:recvall() does, then gives read(buf, maxlen) -> len, a
--- plain function over that data (0 at its end).
function tcp:recvall_read(expires)
	local data, len, a, b = self.recvall(self, expires)
	if not data then return nil, len, a, b end
	local pos = 0
	return function(dst, maxlen)
		if type(dst) ~= 'cdata' then argerr('read', 1, 'buf', 'cdata expected, got ' .. type(dst)) end
		if type(maxlen) ~= 'number' or maxlen < 0 then
			argerr('read', 2, 'maxlen', 'non-negative number expected')
		end
		local n = math.min(maxlen, len - pos)
		ffi.copy(dst, data + pos, n)
		pos = pos + n
		return n
	end
end

--- tcp:recvn(buf, len, [expires]) -> buf, len: exactly len bytes (the
--- later versions' name of the seed's recvall); a short read: nil, err, got.
function tcp:recvn(buf, len, expires)
	local ok, err, _, _, got = self.recvall(self, buf, len, expires)
	if ok then return buf, len end
	return nil, err, got
end

-- buffered reads: read-ahead in the socket (pooled memory only while it
-- holds bytes), which recv, recvall and recvn take first.

local LINE_MAX, SOME_MAX = 8192, 16384

local function maxarg(func, pos, v)
	if v ~= nil and (type(v) ~= 'number' or v < 1 or v % 1 ~= 0 or v >= 2^53) then
		argerr(func, pos, 'maxlen', 'positive integer expected', 1)
	end
end

-- readline and readuntil: (delim, a, b, c, d) from argument `pos` on,
-- either (buf, len, [keep], [expires]) or ([maxlen], [keep], [expires]).
local function read_until(self, func, delim, pos, a, b, c, d)
	local s = self_s(self, func)
	if type(a) == 'cdata' then
		local buf, len = bufarg(func, pos, a, b, true)
		expiresarg(func, pos + 3, d)
		return blocking(d, R_read_until(s, delim, len, c and true or false, mlua_buf(buf), len))
	end
	maxarg(func, pos, a)
	expiresarg(func, pos + 2, c)
	return blocking(c, R_read_until(s, delim, a or LINE_MAX, b and true or false))
end

--- tcp:readline([maxlen], [keep_eol], [expires]) -> s: a line of at most
--- maxlen bytes (8192) with its end (\n or \r\n) if keep_eol; the end
--- of the stream ends a last line without its end, then nil, 'closed'. A
--- longer line: nil, 'message_too_big', its bytes left readable.
--- tcp:readline(buf, len, [keep_eol], [expires]) -> n: the line into buf.
function tcp:readline(a, b, c, d)
	return read_until(self, 'tcp:readline', nil, 2, a, b, c, d)
end

--- tcp:readuntil(delim, [maxlen], [keep], [expires]) -> s: the bytes up to
--- the string delim (with it if keep), at most maxlen (8192) in all; as
--- readline otherwise. tcp:readuntil(delim, buf, len, [keep], [expires]) -> n.
function tcp:readuntil(delim, a, b, c, d)
	self_s(self, 'tcp:readuntil')
	if type(delim) ~= 'string' or #delim == 0 then
		argerr('tcp:readuntil', 2, 'delim', 'non-empty string expected')
	end
	return read_until(self, 'tcp:readuntil', delim, 3, a, b, c, d)
end

--- tcp:readn(n, [expires]) -> s: exactly n bytes, as a string (fewer at the
--- end of the stream: nil, 'closed', the bytes left readable).
function tcp:readn(n, expires)
	local s = self_s(self, 'tcp:readn')
	maxarg('tcp:readn', 2, n)
	if n == nil then argerr('tcp:readn', 2, 'n', 'number expected') end
	expiresarg('tcp:readn', 3, expires)
	return blocking(expires, s:read_fill(n, n))
end

--- tcp:readsome([maxlen], [expires]) -> s: what is there (buffered first),
--- at most maxlen (16384) bytes, waiting only while nothing is.
function tcp:readsome(maxlen, expires)
	local s = self_s(self, 'tcp:readsome')
	maxarg('tcp:readsome', 2, maxlen)
	expiresarg('tcp:readsome', 3, expires)
	return blocking(expires, s:read_fill(1, maxlen or SOME_MAX))
end

--- sock.read_buffers() -> in_use, pooled: this OS thread's read-ahead
--- chunks that hold bytes, and the free ones in its pool.
M.read_buffers = R.read_buffers

--- tcp:shutdown('r'|'w'|'rw', [expires]): never waits on a plain socket;
--- on a TLS one, 'w' and 'rw' send close_notify first (under expires).
function tcp:shutdown(how, expires)
	local s = self_s(self, 'tcp:shutdown')
	expiresarg('tcp:shutdown', 3, expires)
	return blocking(expires, s:shutdown(how))
end

-- udp, raw --------------------------------------------------------------------

--- udp:connect(host, port, [expires], [af]); ('*', 0) removes the filter.
function udp:connect(host, port, expires, af)
	expiresarg('udp:connect', 4, expires)
	local s = self_s(self, 'udp:connect')
	if type(host) == 'cdata' then host = sa_arg(host) end
	local a, b, c, d = s:connect_datagram(host, port, af)
	if a ~= LOOKUP then return a, b, c, d end
	local ai, err, code, msg = lookup(s, expires, a, b)
	if not ai then return nil, err, code, msg end
	return s:connect_datagram(ai, nil, af)
end

--- udp:sendto(host, port, s|buf, [len], [expires], [flags], [af]) -> len
function udp:sendto(host, port, buf, len, expires, flags, af)
	local s = self_s(self, 'udp:sendto')
	if type(host) == 'cdata' then host = sa_arg(host) end
	local b, n = bufarg('udp:sendto', 4, buf, len)
	expiresarg('udp:sendto', 6, expires)
	flagsarg('udp:sendto', 7, flags)
	local mb = mlua_buf(b)
	local r, lk, c, d, e = R_sendto(s, host, port, mb, n, af)
	if r == LOOKUP then
		local ai, err, code, msg = lookup(s, expires, r, lk)
		if not ai then return nil, err, code, msg end
		r, lk, c, d, e = R_sendto(s, ai, nil, mb, n, af)
	end
	return blocking(expires, r, lk, c, d, e)
end

--- udp:recvnext(buf, len, [expires], [flags]) -> len, sa
function udp:recvnext(buf, len, expires, flags)
	local s = self_s(self, 'udp:recvnext')
	if len == nil then argerr('udp:recvnext', 3, 'len', 'number expected') end
	local b, n = bufarg('udp:recvnext', 2, buf, len, true)
	expiresarg('udp:recvnext', 4, expires)
	flagsarg('udp:recvnext', 5, flags)
	return blocking(expires, R_recvnext(s, mlua_buf(b), n))
end
