-- TLS sockets (require'sock_tls', the original's sock_libtls API) between
-- sock's own client and server on loopback: the tcp methods over TLS,
-- the original's options, certificates that fail, a peer that is not TLS,
-- deadlines, close_notify, sessions that resume. The certificates are made
-- by the test with the openssl command (skipped with a message without it).

local t = require'tap'
local sock = require'sock'
local ffi = require'ffi'
local u = require'util'

local stls = require'sock_tls'

local function sh(cmd)
	local ok = os.execute('(' .. cmd .. ') >/dev/null 2>&1')
	return ok == 0 or ok == true
end

-- A CA, a certificate for localhost/127.0.0.1 it signed, one for another
-- name, and a second CA with its own localhost certificate: PEM files in a
-- temporary folder.
local certs
local function make_certs()
	if certs ~= nil then return certs end
	certs = false
	if not sh('command -v openssl') then return false end
	local dir = os.tmpname()
	os.remove(dir)
	assert(sh('mkdir -p ' .. dir))
	local function ca(name)
		return sh(('cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes'
			.. ' -keyout %s.key -out %s.pem -days 2 -subj /CN=%s'
			.. ' -addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign,cRLSign')
			:format(dir, name, name, name))
	end
	local function leaf(name, ca_name, san)
		return sh(('cd %s && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes'
			.. ' -keyout %s.key -out %s.csr -subj /CN=%s'
			.. ' && printf "subjectAltName=%s\\nbasicConstraints=CA:FALSE\\n" > %s.ext'
			.. ' && openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key -CAcreateserial'
			.. ' -out %s.pem -days 2 -extfile %s.ext')
			:format(dir, name, name, name, san, name, name, ca_name, ca_name, name, name))
	end
	if not (ca('ca') and ca('other') and leaf('leaf', 'ca', 'DNS:localhost,IP:127.0.0.1')
		and leaf('wrongname', 'ca', 'DNS:example.org') and leaf('otherleaf', 'other', 'DNS:localhost'))
	then
		return false
	end
	local function read(name)
		local f = assert(io.open(dir .. '/' .. name, 'rb'))
		local s = f:read'*a'
		f:close()
		return s
	end
	certs = {dir = dir, ca_file = dir .. '/ca.pem', ca = read('ca.pem'),
		cert = read('leaf.pem'), key = read('leaf.key')}
	for _, n in ipairs{'leaf', 'wrongname', 'otherleaf'} do
		certs[n] = {cert_file = dir .. '/' .. n .. '.pem', key_file = dir .. '/' .. n .. '.key'}
	end
	return certs
end

local function need_certs()
	if make_certs() then return true end
	t.skip('no openssl command to make test certificates')
	return false
end

-- A TLS listener on a loopback port with `opt`: ss, port.
local function tls_listener(opt)
	local l = assert(sock.tcp())
	assert(l:listen('127.0.0.1', 0))
	local ss = assert(stls.server_stcp(l, opt))
	return ss, ss:getsockname():port()
end

local function tls_client(port, name, opt, expires)
	local c = assert(sock.tcp())
	assert(c:connect('127.0.0.1', port, expires or sock.clock() + 5))
	return stls.client_stcp(c, name, opt)
end

t.test('require sock_libtls is sock_tls; the classes are there', function()
	t.eq(require'sock_libtls', stls)
	t.eq(type(stls.client_stcp), 'function'); t.eq(type(stls.server_stcp), 'function')
	t.eq(type(stls.config), 'function')
	t.eq(stls.client_class.istlssocket, true)
	-- The TLS sockets have the tcp methods (tcp_class is their fallback).
	t.eq(stls.client_class.recvn, sock.tcp_class.recvn)
end)

t.test('echo of 1 MiB over TLS with the tcp methods; close_notify reads as closed', function()
	if not need_certs() then return end
	local ss, port = tls_listener(certs.leaf)
	local size = 1024 * 1024
	local res = {}
	u.run(10, function()
		local cs = assert(ss:accept(sock.clock() + 5))
		t.eq(cs.istlssocket, true)
		local buf = ffi.new('uint8_t[?]', size)
		assert(cs:recvn(buf, size, sock.clock() + 5))
		assert(cs:sendall(buf, size, sock.clock() + 5))
		res.server_version = cs:version()
		assert(cs:shutdown('w', sock.clock() + 5))
		local b = ffi.new'uint8_t[16]'
		res.after = {cs:recv(b, 16, sock.clock() + 5)}
		cs:close()
		ss:close()
	end, function()
		local cs = assert(tls_client(port, 'localhost', {ca_file = certs.ca_file}))
		local data = ffi.new('uint8_t[?]', size)
		for i = 0, size - 1 do data[i] = (i * 7) % 251 end
		assert(cs:send(data, 100, sock.clock() + 5) == 100) -- send: some bytes
		assert(cs:sendall(data + 100, size - 100, sock.clock() + 5))
		local buf, len = cs:recvall(sock.clock() + 5) -- to the close_notify
		res.len = len
		res.same = len == size and ffi.string(buf, len) == ffi.string(data, size)
		res.version, res.cipher = cs:version(), cs:cipher()
		res.resumed = cs:session_resumed()
		cs:close()
	end)
	t.eq(res.len, size)
	t.ok(res.same, 'the echo is the data')
	t.eq(res.version, 'tlsv1.3'); t.eq(res.server_version, 'tlsv1.3')
	t.ok(res.cipher:find'^TLS13_', res.cipher)
	t.eq(res.resumed, false)
	t.eq(res.after[1], nil); t.eq(res.after[2], 'closed')
end)

t.test("the original's server and client options: loadfile, keypairs, protocols, ciphers", function()
	if not need_certs() then return end
	local loaded = {}
	local function loadfile(path)
		loaded[#loaded + 1] = path
		local f = assert(io.open(path, 'rb'))
		local s = f:read'*a'
		f:close()
		return s
	end
	local server_opt = {
		loadfile = loadfile,
		protocols = 'tlsv1.2',
		ciphers = [[
			ECDHE-ECDSA-AES256-GCM-SHA384
			ECDHE-RSA-AES256-GCM-SHA384
			ECDHE-ECDSA-CHACHA20-POLY1305
			ECDHE-RSA-AES128-SHA256
		]],
		prefer_ciphers_server = true,
		keypairs = {{cert_file = certs.leaf.cert_file, key_file = certs.leaf.key_file}},
		alpn = 'http/1.1',
	}
	local ss, port = tls_listener(server_opt)
	t.eq(#loaded, 2, 'the certificate and key came through loadfile')
	local res = {}
	u.run(10, function()
		local cs = assert(ss:accept())
		local b = ffi.new'uint8_t[5]'
		assert(cs:recvn(b, 5, sock.clock() + 5))
		assert(cs:send(b, 5))
		res.alpn = cs:alpn_selected()
		res.name = cs:servername()
		cs:close(); ss:close()
	end, function()
		local cs = assert(tls_client(port, 'localhost', {ca_file = certs.ca_file, loadfile = loadfile,
			alpn = {'h2', 'http/1.1'}}))
		assert(cs:sendall('hello', nil, sock.clock() + 5))
		local b = ffi.new'uint8_t[5]'
		assert(cs:recvn(b, 5, sock.clock() + 5))
		res.echo = ffi.string(b, 5)
		res.version, res.cipher = cs:version(), cs:cipher()
		cs:close()
	end)
	t.eq(res.echo, 'hello')
	t.eq(res.version, 'tlsv1.2')
	t.eq(res.cipher, 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384')
	t.eq(res.alpn, 'http/1.1'); t.eq(res.name, 'localhost')
end)

-- The error a client gets from a server with `server_opt`, verifying with
-- `client_opt` the name `name`.
local function client_error(server_opt, client_opt, name)
	local ss, port = tls_listener(server_opt)
	local res = {}
	u.run(10, function()
		local cs = assert(ss:accept())
		cs:handshake(sock.clock() + 5)
		cs:close(); ss:close()
	end, function()
		local cs = assert(tls_client(port, name, client_opt))
		res.r = {cs:handshake(sock.clock() + 5)}
		cs:close()
	end)
	return res.r
end

t.test('a wrong host name and an unknown CA fail with certificate_invalid and a reason', function()
	if not need_certs() then return end
	local r = client_error(certs.wrongname, {ca = certs.ca}, 'localhost')
	t.eq(r[1], nil); t.eq(r[2], 'certificate_invalid')
	t.ok(tostring(r[4]):find'name', tostring(r[4]))
	r = client_error(certs.otherleaf, {ca = certs.ca}, 'localhost')
	t.eq(r[2], 'certificate_invalid')
	t.ok(tostring(r[4]):lower():find'issuer', tostring(r[4]))
	-- The insecure switches: the name, then everything.
	r = client_error(certs.wrongname, {ca = certs.ca, insecure_noverifyname = true}, 'localhost')
	t.eq(r[1], true, tostring(r[2]))
	r = client_error(certs.otherleaf, {insecure_noverifycert = true}, 'localhost')
	t.eq(r[1], true, tostring(r[2]))
end)

t.test('a peer that is not TLS fails the handshake; a silent one times out and is closed', function()
	if not need_certs() then return end
	local l = assert(sock.tcp())
	assert(l:listen('127.0.0.1', 0))
	local port = l:getsockname():port()
	local res = {}
	u.run(10, function()
		local c = assert(l:accept())
		local b = ffi.new'uint8_t[512]'
		c:recv(b, 512, sock.clock() + 5)
		c:sendall('HTTP/1.1 400 Bad Request\r\n\r\n')
		sock.sleep(0.2)
		c:close()
		-- The second client: accepted, never answered.
		local c2 = assert(l:accept())
		sock.sleep(1)
		c2:close()
		l:close()
	end, function()
		local cs = assert(tls_client(port, 'localhost', {ca = certs.ca}))
		res.plain = {cs:recv(ffi.new'uint8_t[16]', 16, sock.clock() + 5)}
		cs:close()
		cs = assert(tls_client(port, 'localhost', {ca = certs.ca}))
		local t0 = sock.clock()
		res.silent = {cs:recv(ffi.new'uint8_t[16]', 16, sock.clock() + 0.3)}
		res.took = sock.clock() - t0
		res.closed = cs:closed()
	end)
	t.eq(res.plain[1], nil); t.eq(res.plain[2], 'tls_handshake_failed')
	t.ok(tostring(res.plain[4]):find'TLS', tostring(res.plain[4]))
	t.eq(res.silent[2], 'timeout')
	t.ok(res.took >= 0.3 and res.took < 1.5, 'timed out after ' .. res.took)
	t.eq(res.closed, true, 'a passed deadline closes the socket (the seed)')
end)

t.test('buffered reads over TLS: readline, readn, then recv', function()
	if not need_certs() then return end
	local ss, port = tls_listener(certs.leaf)
	local r = {}
	u.run(10, function()
		local cs = assert(ss:accept())
		assert(cs:sendall('HELO x\r\nDATA\n12345rest'))
		assert(cs:shutdown('w', sock.clock() + 5))
		cs:close(); ss:close()
	end, function()
		local cs = assert(tls_client(port, 'localhost', {ca = certs.ca}))
		r[1] = cs:readline(nil, false, sock.clock() + 5)
		r[2] = cs:readline(nil, true, sock.clock() + 5)
		r[3] = cs:readn(5, sock.clock() + 5)
		local b = ffi.new'uint8_t[8]'
		local n = assert(cs:recv(b, 8, sock.clock() + 5))
		r[4] = ffi.string(b, n)
		r[5] = {cs:readline(nil, false, sock.clock() + 5)}
		cs:close()
	end)
	t.eq(r[1], 'HELO x'); t.eq(r[2], 'DATA\n'); t.eq(r[3], '12345'); t.eq(r[4], 'rest')
	t.eq(r[5][1], nil); t.eq(r[5][2], 'closed')
end)

t.test('one options table: one configuration, and the second connection resumes', function()
	if not need_certs() then return end
	local ss, port = tls_listener(certs.leaf)
	local copt = {ca_file = certs.ca_file}
	local resumed = {}
	u.run(10, function()
		for _ = 1, 2 do
			local cs = assert(ss:accept())
			local b = ffi.new'uint8_t[4]'
			assert(cs:recvn(b, 4, sock.clock() + 5))
			assert(cs:sendall('pong'))
			assert(cs:shutdown('w', sock.clock() + 5))
			cs:close()
		end
		ss:close()
	end, function()
		for i = 1, 2 do
			local cs = assert(tls_client(port, 'localhost', copt))
			assert(cs:sendall('ping', nil, sock.clock() + 5))
			if i == 1 then
				local buf, len = cs:recvall(sock.clock() + 5)
				assert(buf and ffi.string(buf, len) == 'pong')
			else -- recvall_read: a plain reader over everything to the close_notify
				local read = assert(cs:recvall_read(sock.clock() + 5))
				local b = ffi.new'uint8_t[8]'
				local n = read(b, 3)
				local m = read(b + n, 8)
				assert(n == 3 and m == 1 and ffi.string(b, 4) == 'pong' and read(b, 8) == 0)
			end
			resumed[i] = cs:session_resumed()
			cs:close()
		end
	end)
	t.eq(resumed[1], false); t.eq(resumed[2], true)
end)

t.test('wrapping: the plain object is a view of the TLS socket; bad arguments and options', function()
	if not need_certs() then return end
	local c = assert(sock.tcp())
	-- A wrapper on the plain object's close (as the original's HTTP client
	-- puts one) runs when the TLS socket closes, while it is still open.
	local seen
	local inherited = c.close
	function c:close(...) seen = self:closed(); return inherited(self, ...) end
	local cs = assert(stls.client_stcp(c, 'localhost', {ca = certs.ca}))
	t.eq(c:closed(), false); t.eq(cs:closed(), false)
	t.eq(cs.tcp, c)
	t.eq(c._s, cs._s, 'one socket, two views')
	t.raises('TCP socket expected', function() stls.client_stcp(cs, 'localhost', {}) end)
	t.raises('servername', function() stls.client_stcp(assert(sock.tcp()), nil, {}) end)
	t.raises('TCP socket expected', function() stls.client_stcp(assert(sock.udp()), 'x', {}) end)
	t.raises("unknown TLS option 'bogus'", function() stls.client_stcp(assert(sock.tcp()), 'x', {bogus = 1}) end)
	t.raises('string expected', function() stls.client_stcp(assert(sock.tcp()), 'x', {ca = 42}) end)
	t.raises('not a TCP socket', function() cs:accept() end)
	cs:close()
	t.eq(seen, false, 'the wrapper ran before the close')
	t.eq(cs:closed(), true); t.eq(c:closed(), true)
	-- Runtime failures are values.
	local l = assert(sock.tcp()); assert(l:listen('127.0.0.1', 0))
	local r = {stls.server_stcp(l, {})}
	t.eq(r[1], nil); t.eq(r[2], 'invalid_argument')
	r = {stls.server_stcp(l, {cert = 'junk', key = 'junk'})}
	t.eq(r[2], 'invalid_argument'); t.ok(tostring(r[4]):find'cert', tostring(r[4]))
	r = {stls.server_stcp(l, {cert_file = '/nonexistent.pem', key_file = '/nonexistent.key'})}
	t.eq(r[2], 'not_found')
	r = {stls.server_stcp(l, {cert = certs.cert})}
	t.eq(r[2], 'invalid_argument')
	r = {stls.client_stcp(assert(sock.tcp()), 'localhost', {crl_file = 'x'})}
	t.eq(r[2], 'not_supported')
	r = {stls.client_stcp(assert(sock.tcp()), 'localhost', {protocols = 'tlsv1.0'})}
	t.eq(r[2], 'not_supported')
	local plain = assert(sock.tcp())
	r = {stls.client_stcp(plain, 'not a name!', {})}
	t.eq(r[2], 'invalid_argument')
	t.eq(plain:closed(), false, 'a refused name leaves the plain socket usable')
	plain:close()
	l:close()
	-- A configuration object serves many sockets.
	local conf = assert(stls.config{ca = certs.ca})
	local a = assert(stls.client_stcp(assert(sock.tcp()), 'localhost', conf))
	local b = assert(stls.client_stcp(assert(sock.tcp()), 'localhost', conf))
	a:close(); b:close()
	conf:free()
	t.raises('after free', function() stls.client_stcp(assert(sock.tcp()), 'localhost', conf) end)
end)

t.test('a TLS call outside a thread that would wait is not_in_thread', function()
	if not need_certs() then return end
	local ss, port = tls_listener(certs.leaf)
	local c = assert(sock.tcp())
	local res = {}
	u.run(function() assert(c:connect('127.0.0.1', port)) end)
	local cs = assert(stls.client_stcp(c, 'localhost', {ca = certs.ca}))
	res.r = {cs:recv(ffi.new'uint8_t[4]', 4)}
	t.eq(res.r[2], 'not_in_thread')
	cs:close(); ss:close()
end)

t.test('curl gets a page from a Lua TLS server (TLS 1.2 and 1.3)', function()
	if not need_certs() then return end
	if not sh('command -v curl') then t.skip('no curl') end
	for _, v in ipairs{'--tlsv1.2 --tls-max 1.2', '--tlsv1.3'} do
		local ss, port = tls_listener(certs.leaf)
		local out = certs.dir .. '/curl.out'
		os.remove(out)
		-- curl in the background; the loop serves it meanwhile.
		assert(sh(('(curl -s --max-time 10 %s --cacert %s --resolve localhost:%d:127.0.0.1'
			.. ' https://localhost:%d/hello > %s; echo "exit $?" >> %s) &')
			:format(v, certs.ca_file, port, port, out, out)))
		local res = {}
		u.run(15, function()
			local cs = assert(ss:accept(sock.clock() + 10))
			local buf = ffi.new'uint8_t[4096]'
			local got = ''
			while not got:find'\r\n\r\n' do
				local n, err = cs:recv(buf, 4096, sock.clock() + 10)
				if not n then error(err) end
				got = got .. ffi.string(buf, n)
			end
			res.request = got
			res.version = cs:version()
			assert(cs:sendall('HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n',
				nil, sock.clock() + 5))
			cs:shutdown('w', sock.clock() + 5)
			cs:close(); ss:close()
		end)
		local text
		for _ = 1, 100 do -- curl's output is complete once its exit line is there
			local f = io.open(out, 'rb')
			text = f and f:read'*a' or ''
			if f then f:close() end
			if text:find'exit %d+' then break end
			os.execute('sleep 0.05')
		end
		t.eq(text, 'hello\nexit 0\n', v)
		t.ok(res.request:find('^GET /hello HTTP/1.1\r\n'), res.request)
		t.eq(res.version, v:find'1.3' and 'tlsv1.3' or 'tlsv1.2')
	end
end)
