-- tap.lua: a minimal test harness for the sock Lua tests.
--
--   local t = require'tap'
--   t.test('name', function() t.eq(1 + 1, 2) end)
--
-- run.lua loads every test_*.lua file (which registers tests with t.test), then
-- runs each test in its own xpcall and prints one line per test and the final
-- line "N passed, N failed".

local t = {}

local tests = {}      -- {file=, name=, fn=}, in registration order
local current_file = '?'

-- Registers a test (called by the test files when run.lua loads them).
function t.test(name, fn)
	assert(type(name) == 'string', 'test name expected')
	assert(type(fn) == 'function', 'test function expected')
	tests[#tests + 1] = {file = current_file, name = name, fn = fn}
end

local function show(v)
	if type(v) == 'string' then return string.format('%q', v) end
	return tostring(v)
end

-- Fails (raises) with msg unless v is truthy.
function t.ok(v, msg)
	if not v then error(msg or 'assertion failed', 2) end
	return v
end

-- Fails unless got == want (primitive equality).
function t.eq(got, want, msg)
	if got ~= want then
		error(string.format('%sexpected %s, got %s',
			msg and msg .. ': ' or '', show(want), show(got)), 2)
	end
	return got
end

-- Fails unless the string s contains the plain text sub.
function t.has(s, sub, msg)
	if type(s) ~= 'string' or not s:find(sub, 1, true) then
		error(string.format('%sexpected a string containing %s, got %s',
			msg and msg .. ': ' or '', show(sub), show(s)), 2)
	end
	return s
end

-- Calls fn(...) and fails unless it raises; returns the error's text (first
-- line of tostring(err): sock's Rust errors carry a traceback after it). If
-- sub is given, the text must contain it (plain).
function t.raises(sub, fn, ...)
	local ok, err = pcall(fn, ...)
	if ok then
		error('expected an error' .. (sub and ' containing ' .. show(sub) or '')
			.. ', but the call succeeded', 2)
	end
	local text = tostring(err):match('^[^\n]*')
	if sub and not text:find(sub, 1, true) then
		error(string.format('expected an error containing %s, got %s',
			show(sub), show(text)), 2)
	end
	return text
end

-- Skips the rest of the running test, which passes with the reason shown
-- ("ok N - file: test # SKIP reason").
local skip_mark = {}
function t.skip(reason)
	error({[skip_mark] = tostring(reason)}, 0)
end

-- The sockets this process has open: their descriptors (Linux's
-- /proc/PID/fd, PID this process's: /proc/self would be the `ls`; nil
-- elsewhere).
local ffi = require'ffi'
pcall(ffi.cdef, 'int getpid(void);')
local function open_sockets()
	local ls = io.popen('ls -l /proc/' .. ffi.C.getpid() .. '/fd/ 2>/dev/null')
	if not ls then return nil end
	local fds = {}
	for line in ls:lines() do
		local fd = line:match(' (%d+) %-> socket:')
		if fd then fds[#fds + 1] = tonumber(fd) end
	end
	ls:close()
	return fds
end

-- What every test must leave behind: nothing. Its sockets closed (by the
-- test, or by the collection of the objects it dropped), and the loop with
-- nothing left to run or wait for. The error, or nil.
local function leftovers(before)
	local sock = package.loaded.sock
	if not sock then return nil end
	collectgarbage(); collectgarbage()
	local ok, why = sock.poll(0)
	if ok or why ~= 'empty' then
		return 'the test left the loop with something to run or wait for (sock.poll: '
			.. tostring(ok) .. ', ' .. tostring(why) .. ')'
	end
	local after = open_sockets()
	if before and after and #after > #before then
		return ('the test left %d socket(s) open'):format(#after - #before)
	end
	return nil
end

-- Runs every registered test; returns passed, failed.
function t.run(out)
	out = out or io.stdout
	local passed, failed = 0, 0
	for i, test in ipairs(tests) do
		local before = open_sockets()
		local ok, err = xpcall(test.fn, function(e)
			if type(e) == 'table' and e[skip_mark] then return e end
			return debug.traceback(e, 2)
		end)
		if ok or (type(err) == 'table' and err[skip_mark]) then
			local left = leftovers(before)
			if left then ok, err = false, left end
		end
		local label = string.format('%d - %s: %s', i, test.file, test.name)
		if not ok and type(err) == 'table' and err[skip_mark] then
			passed = passed + 1
			out:write('ok ', label, ' # SKIP ', err[skip_mark], '\n')
		elseif ok then
			passed = passed + 1
			out:write('ok ', label, '\n')
		else
			failed = failed + 1
			out:write('not ok ', label, '\n')
			for line in (tostring(err) .. '\n'):gmatch('(.-)\n') do
				out:write('#   ', line, '\n')
			end
		end
	end
	return passed, failed
end

-- Loads one test file (registering its tests); a file that fails to load counts
-- as one failed test.
function t.load(path, file)
	current_file = file
	local fn, err = loadfile(path)
	if fn then
		local ok, e = xpcall(fn, debug.traceback)
		if ok then return end
		err = e
	end
	t.test('(loading the file)', function() error(err, 0) end)
end

return t
