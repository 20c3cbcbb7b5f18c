-- sock/tls.lua: TLS sockets, the original's `sock_libtls` API, as the module
-- `require'sock_tls'` (and `require'sock_libtls'`, its old name).
-- Called by the module's loader as chunk(M, R), after sock.lua.
--
-- A TLS socket is a socket object whose Rust kind is a TLS stream
-- (src/socket/tls.rs): the tcp methods (send, recv, sendall, recvall, recvn,
-- recvall_read, close, getopt, ...) work on it as they are, with the same
-- deadlines. What is here: the options table (read into the flat table
-- that Rust takes), the configurations, and the two wrappers.
local M, R = ...

local type, error, pairs, ipairs, setmetatable, tostring = type, error, pairs, ipairs, setmetatable, tostring
local concat = table.concat
local getfenv, setfenv = debug.getfenv, debug.setfenv

local S = {}

local function argerr(func, pos, name, msg)
	error(('%s: bad argument #%d \'%s\' (%s)'):format(func, pos, name, msg), 3)
end

-- options -------------------------------------------------------------------

-- The option keys of the original (libtls), by what becomes of them.
local ignored = { -- accepted, no effect here
	loadfile = true, verify_depth = true, session_id = true, session_lifetime = true,
	dheparams = true, prefer_ciphers_server = true,
}
local unsupported = { -- nil, 'not_supported'
	crl = 'CRLs', crl_file = 'CRLs', ocsp_require_stapling = 'OCSP stapling requirements',
	ticket_keys = 'ticket keys of the program\'s own (keys are made and rotated here)',
	session_fd = 'session files', ca_path = 'CA folders (use ca or ca_file)',
}
local flags = {
	prefer_ciphers_client = true, insecure_noverifycert = true,
	insecure_noverifyname = true, insecure_noverifytime = true,
	verify_client = true, verify_client_optional = true,
}
local strings = {ca = true, cert = true, key = true, ocsp_staple = true, protocols = true,
	ciphers = true, ecdhecurve = true, ecdhecurves = true}
local files = {ca_file = 'ca', cert_file = 'cert', key_file = 'key', ocsp_staple_file = 'ocsp_staple'}
local keypair_keys = {cert = true, key = true, ocsp_staple = true,
	cert_file = true, key_file = true, ocsp_staple_file = true}

local function not_supported(what)
	return nil, 'not_supported', 0, what .. ' are not supported'
end

-- The contents of a file option: opt.loadfile(path) if the options have
-- it (the original's hook), else the file's bytes.
local function load(opt, path, key)
	if type(path) ~= 'string' then
		return nil, 'invalid_argument', 0, ('TLS option %s: file name expected'):format(key)
	end
	if opt.loadfile then
		local s, err = opt.loadfile(path)
		if type(s) ~= 'string' then
			return nil, 'not_found', 0, ('%s: cannot load %s: %s'):format(key, path, tostring(err))
		end
		return s
	end
	local f, err = io.open(path, 'rb')
	if not f then return nil, 'not_found', 0, ('%s: %s'):format(key, err) end
	local s = f:read'*a'
	f:close()
	return s
end

-- A string option, or a file option read: the value, or nil (absent), or
-- false, err... (a file that cannot be read).
local function value(opt, t, key, func)
	local v = t[key]
	if v ~= nil then
		if type(v) ~= 'string' then
			argerr(func, 2, 'opt', ('option %s: string expected, got %s'):format(key, type(v)))
		end
		return v
	end
	local path = t[key .. '_file']
	if path == nil then return nil end
	local s, err, code, msg = load(opt, path, key .. '_file')
	if not s then return false, err, code, msg end
	return s
end

-- The options table `opt` as the flat table Rust takes, or nil, err, code, msg.
local function flat(opt, func)
	local out = {}
	for k, v in pairs(opt) do
		if type(k) ~= 'string' then
			argerr(func, 2, 'opt', 'option names are strings')
		elseif unsupported[k] then
			if v then return not_supported(unsupported[k]) end
		elseif flags[k] then
			out[k] = v and true or false
		elseif not (ignored[k] or strings[k] or files[k] or k == 'keypairs' or k == 'alpn') then
			argerr(func, 2, 'opt', ('unknown TLS option \'%s\''):format(k))
		end
	end
	if opt.loadfile ~= nil and type(opt.loadfile) ~= 'function' then
		argerr(func, 2, 'opt', 'option loadfile: function expected')
	end
	for _, k in ipairs{'ca', 'protocols', 'ciphers'} do
		local v, err, code, msg = value(opt, opt, k, func)
		if v == false then return nil, err, code, msg end
		out[k] = v
	end
	local curves = opt.ecdhecurves or opt.ecdhecurve
	if curves ~= nil then
		if type(curves) ~= 'string' then argerr(func, 2, 'opt', 'option ecdhecurves: string expected') end
		out.curves = curves
	end
	local alpn = opt.alpn
	if type(alpn) == 'table' then alpn = concat(alpn, ',') end
	if alpn ~= nil and type(alpn) ~= 'string' then
		argerr(func, 2, 'opt', 'option alpn: string or list of strings expected')
	end
	out.alpn = alpn
	-- Key pairs: `keypairs = {{cert=, key=}, ...}`, and/or cert/key at the top.
	local pairs_in = {}
	if opt.keypairs ~= nil then
		if type(opt.keypairs) ~= 'table' then argerr(func, 2, 'opt', 'option keypairs: list expected') end
		for i, kp in ipairs(opt.keypairs) do
			if type(kp) ~= 'table' then argerr(func, 2, 'opt', 'option keypairs: tables expected') end
			for k in pairs(kp) do
				if not keypair_keys[k] then
					argerr(func, 2, 'opt', ('keypairs[%d]: unknown key \'%s\''):format(i, tostring(k)))
				end
			end
			pairs_in[#pairs_in + 1] = kp
		end
	end
	if opt.cert ~= nil or opt.cert_file ~= nil or opt.key ~= nil or opt.key_file ~= nil then
		table.insert(pairs_in, 1, opt)
	end
	out.keypairs = {}
	for i, kp in ipairs(pairs_in) do
		local o = {}
		for _, k in ipairs{'cert', 'key', 'ocsp_staple'} do
			local v, err, code, msg = value(opt, kp, k, func)
			if v == false then return nil, err, code, msg end
			o[k] = v
		end
		if not o.cert or not o.key then
			return nil, 'invalid_argument', 0, ('key pair %d: a certificate needs its key, and a key its certificate'):format(i)
		end
		out.keypairs[i] = o
	end
	return out
end

-- configurations ------------------------------------------------------------

local config = {}
local config_mt = {__index = config, __name = 'sock.tls_config'}
config_mt.__tostring = function() return 'sock.tls_config' end

local function new_config(opt, func)
	local t, err, code, msg = flat(opt, func)
	if not t then return nil, err, code, msg end
	return setmetatable({_c = R.tls_config(t)}, config_mt)
end

--- stls.config(opt) -> conf: a configuration built once, for many
--- connections (sessions resume across them).
function S.config(opt)
	if type(opt) ~= 'table' then argerr('stls.config', 1, 'opt', 'table expected') end
	return new_config(opt, 'stls.config')
end

--- conf:free(): nothing to do (the configuration goes with its last user).
function config:free() self._c = nil end

-- The configurations made from options tables, by table: the same table
-- gives the same configuration (and its sessions) every time.
local from_table = setmetatable({}, {__mode = 'k'})

local function conf_of(opt, func, pos)
	if opt == nil then opt = {} end
	if getmetatable(opt) == config_mt then
		if not opt._c then argerr(func, pos, 'opt', 'configuration used after free()') end
		return opt._c
	end
	if type(opt) ~= 'table' then argerr(func, pos, 'opt', 'table or stls.config expected') end
	local c = from_table[opt]
	if c then return c end
	local conf, err, code, msg = new_config(opt, func)
	if not conf then return nil, err, code, msg end
	from_table[opt] = conf._c
	return conf._c
end

-- sockets -------------------------------------------------------------------

local tcp = M.tcp_class
local stcp = setmetatable({istlssocket = true}, {__index = tcp})
local stcp_mt = {__index = stcp, __name = 'sock.tls'}
stcp_mt.__tostring = function(self) return 'sock.tls (' .. tostring(self._s:fd()) .. ')' end
S.client_class = stcp

-- The TLS socket object over the plain object `plain`, whose Rust socket
-- moved into the TLS stream (s, h: the new userdata and handle). The plain
-- object becomes a second view of the TLS socket (its I/O is TLS, its
-- close the TLS close), so code that keeps it, or wrapped its methods (the
-- original's HTTP client wraps tcp.close), sees one socket.
local function wrap(plain, s, h, ...)
	if not s then return nil, h, ... end
	setfenv(s, getfenv(plain._s)) -- the shared environment (see sock.lua's wrap)
	plain._s, plain._h = s, h
	return setmetatable({_s = s, _h = h, tcp = plain}, stcp_mt)
end

local function tcp_arg(func, t)
	if type(t) ~= 'table' or not t.istcpsocket or t.istlssocket or not t._s then
		argerr(func, 1, 'tcp', 'TCP socket expected')
	end
end

--- stls.client_stcp(tcp, servername, opt) -> cs: the connected TCP socket
--- as a TLS client of servername (SNI, and the name its certificate must
--- have). The handshake is made by the first I/O (or cs:handshake()).
function S.client_stcp(tcp_s, servername, opt)
	tcp_arg('stls.client_stcp', tcp_s)
	if type(servername) ~= 'string' then
		argerr('stls.client_stcp', 2, 'servername', 'string expected, got ' .. type(servername))
	end
	local c, err, code, msg = conf_of(opt, 'stls.client_stcp', 3)
	if not c then return nil, err, code, msg end
	local ok
	ok, err, code, msg = R.tls_check(c, false)
	if not ok then return nil, err, code, msg end
	return wrap(tcp_s, R.tls_wrap(tcp_s._s, c, servername))
end

--- cs:handshake([expires]): makes the handshake now.
local PENDING, pending = R.PENDING, R.pending
function stcp:handshake(expires)
	local a, b, c, d = self._s:tls_handshake()
	if a == PENDING then return pending(expires) end
	return a, b, c, d
end

--- cs:close(): close_notify, then the close; through the plain object's
--- close (the original closes its tcp last), so wrappers of it run.
function stcp:close()
	local plain = self.tcp
	if plain and plain ~= self and plain._s == self._s then return plain:close() end
	return tcp.close(self)
end

--- What the handshake agreed: cs:version() ('tlsv1.2', 'tlsv1.3'),
--- cs:cipher() (IANA name), cs:alpn_selected(), cs:session_resumed(),
--- cs:servername() (server side: the name the client asked for).
function stcp:version() return self._s:tls_version() end
function stcp:cipher() return self._s:tls_cipher() end
function stcp:alpn_selected() return self._s:tls_alpn() end
function stcp:session_resumed() return self._s:tls_resumed() end
function stcp:servername() return self._s:tls_servername() end

-- server sockets: a listening TCP socket and a configuration.
local sstcp = {issocket = true, istcpsocket = true, istlssocket = true}
local sstcp_mt = {__name = 'sock.tls_server'}
sstcp_mt.__index = function(self, k)
	local m = sstcp[k]
	if m ~= nil then return m end
	-- The listening socket's methods (getsockname, setopt, ...).
	local f = tcp[k]
	if type(f) == 'function' then
		return function(ss, ...) return f(ss.tcp, ...) end
	end
	return f
end
sstcp_mt.__tostring = function(self) return 'sock.tls_server (' .. tostring(self.tcp._s:fd()) .. ')' end
S.server_class = sstcp

--- stls.server_stcp(tcp, opt) -> ss: the listening TCP socket, whose
--- accepted connections are TLS servers with the certificate(s) of opt.
function S.server_stcp(tcp_s, opt)
	tcp_arg('stls.server_stcp', tcp_s)
	local c, err, code, msg = conf_of(opt, 'stls.server_stcp', 2)
	if not c then return nil, err, code, msg end
	local ok
	ok, err, code, msg = R.tls_check(c, true)
	if not ok then return nil, err, code, msg end
	return setmetatable({tcp = tcp_s, _c = c}, sstcp_mt)
end

--- ss:accept([expires]) -> cs, remote_addr, local_addr: the next
--- connection; its handshake runs on its first I/O, in the thread that
--- serves it (a slow client never holds up the accepting thread).
function sstcp:accept(expires)
	local c, ra, la, d = self.tcp:accept(expires)
	if not c then return nil, ra, la, d end
	local cs, err, code, msg = wrap(c, R.tls_wrap(c._s, self._c, nil))
	if not cs then
		c:close()
		return nil, err, code, msg
	end
	return cs, ra, la
end

function sstcp:close() return self.tcp:close() end
function sstcp:closed() return self.tcp:closed() end

R.tls_module = S
local preload = package.preload
preload.sock_tls = preload.sock_tls or function() return R.tls_module end
preload.sock_libtls = preload.sock_libtls or function() return require'sock_tls' end
