-- api_wrk.lua - wrk script for bench/web.sh --api: the HTTP API with a key.
--
--   wrk ... -s bench/api_wrk.lua URL -- get KEY FILE
--       GET each path of FILE (one per line: /api/v1/subscribers/ADDR) in turn
--   wrk ... -s bench/api_wrk.lua URL -- upsert KEY
--       POST /api/v1/subscribers, each request a new address
--       t<thread>-<n>@bench.example.org on the list "bench": every 2xx is a
--       new subscriber, which bench/web.sh counts afterwards ("lost")
-- and prints the same WRK_RESULT line as web_rotate.lua.

local threads = {}

function setup(thread)
	thread:set("tid", #threads)
	table.insert(threads, thread)
end

function init(args)
	mode, key = args[1], args[2]
	if mode ~= "get" and mode ~= "upsert" then error("api_wrk.lua: get KEY FILE | upsert KEY") end
	auth = { ["Authorization"] = "Bearer " .. key, ["User-Agent"] = "bench/web.sh wrk" }
	c2xx, c3xx, other, n = 0, 0, 0, 0
	if mode == "get" then
		reqs = {}
		for line in io.lines(args[3]) do
			if line ~= "" then reqs[#reqs + 1] = wrk.format("GET", line, auth) end
		end
		idx = (tid * 7919) % #reqs
	else
		post = { ["Authorization"] = auth["Authorization"], ["User-Agent"] = auth["User-Agent"],
		         ["Content-Type"] = "application/json" }
	end
end

function request()
	if mode == "get" then
		idx = idx % #reqs + 1
		return reqs[idx]
	end
	n = n + 1
	return wrk.format("POST", "/api/v1/subscribers", post, string.format(
		'{"email":"t%d-%d@bench.example.org","name":"Bench %d","lists":["bench"],'
		.. '"attributes":{"source":"wrk"}}', tid, n, n))
end

function response(status, headers, body)
	if status >= 200 and status < 300 then
		c2xx = c2xx + 1
	elseif status >= 300 and status < 400 then
		c3xx = c3xx + 1
	else
		other = other + 1
	end
end

function done(summary, latency, requests)
	local a, b, c = 0, 0, 0
	for _, t in ipairs(threads) do
		a = a + t:get("c2xx")
		b = b + t:get("c3xx")
		c = c + t:get("other")
	end
	local e = summary.errors
	io.write(string.format(
		"WRK_RESULT requests=%d c2xx=%d c3xx=%d other=%d connect=%d read=%d write=%d "
		.. "status=%d timeout=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d "
		.. "max_us=%d\n",
		summary.requests, a, b, c, e.connect, e.read, e.write, e.status, e.timeout,
		summary.duration, summary.requests / (summary.duration / 1e6),
		latency:percentile(50), latency:percentile(90), latency:percentile(99),
		latency.max))
end
