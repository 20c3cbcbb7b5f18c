-- run.lua: runs every test_*.lua file of this folder.
--
--   LUA_CPATH='<dir of sock.so>/?.so;;' luajit sock-lua/tests/lua/run.lua [pattern]
--
-- Prints "ok N - file: test" / "not ok N - ..." per test and ends with the line
-- "N passed, N failed"; exits non-zero when a test failed. With a pattern, only
-- files whose name contains it (plain) run.

local dir = (arg and arg[0] or ''):match('^(.*)[/\\]') or '.'
package.path = dir .. '/?.lua;' .. package.path

local t = require'tap'
local filter = arg and arg[1]

local files = {}
local ls = assert(io.popen('ls -1 "' .. dir .. '"'))
for name in ls:lines() do
	if name:match('^test_.*%.lua$') and (not filter or name:find(filter, 1, true)) then
		files[#files + 1] = name
	end
end
ls:close()
table.sort(files)

for _, name in ipairs(files) do
	t.load(dir .. '/' .. name, name)
end

local passed, failed = t.run()
if passed + failed == 0 then
	failed = 1
	print('no test found in ' .. dir)
end
print(string.format('%d passed, %d failed', passed, failed))
io.stdout:flush()
os.exit(failed == 0 and 0 or 1)
