-- web_rotate.lua - wrk script for bench/web.sh: GET a rotating list of paths
-- (one per line in the file given after --) and count the answers by class.
--
-- Each wrk thread has its own Lua state: init() loads the paths and starts
-- at an offset so the threads do not walk in step; response() counts 2xx,
-- 3xx and other statuses per thread; done() (in the main state) sums the
-- threads through thread:get() and prints one machine-readable line:
--   WRK_RESULT requests=N c2xx=N c3xx=N other=N connect=N read=N write=N
--              status=N timeout=N duration_us=N rps=X p50_us=N p90_us=N
--              p99_us=N max_us=N
-- (statuses >= 400 are also in wrk's own "status" error count).

local threads = {}

function setup(thread)
	thread:set("tid", #threads)
	table.insert(threads, thread)
end

function init(args)
	local file = args[1] or error("web_rotate.lua: give the path list after --")
	paths = {}
	for line in io.lines(file) do
		if line ~= "" then paths[#paths + 1] = line end
	end
	if #paths == 0 then error("web_rotate.lua: " .. file .. " is empty") end
	idx = (tid * 7919) % #paths
	c2xx, c3xx, other = 0, 0, 0
	-- one request string per path, built once
	reqs = {}
	for i, p in ipairs(paths) do
		reqs[i] = wrk.format("GET", p, { ["User-Agent"] = "Mozilla/5.0 (bench/web.sh wrk)" })
	end
end

function request()
	idx = idx % #reqs + 1
	return reqs[idx]
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
