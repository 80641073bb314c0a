-- GET /{code} with codes Zipf-distributed (exponent 1) over the codes in
-- $CODES: the link of rank k is asked for in proportion to 1/k, a
-- realistic hot/cold mix. 200,000 draws are made and formatted in init()
-- and then cycled through.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")
local reqs, n, i = {}, 0, 0

function init(args)
	local codes = {}
	for code in io.lines(os.getenv("CODES")) do codes[#codes + 1] = code end
	local cum, total = {}, 0
	for k = 1, #codes do
		total = total + 1 / k
		cum[k] = total
	end
	math.randomseed(42)
	local h = { ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0" }
	for d = 1, 200000 do
		local x, lo, hi = math.random() * total, 1, #codes
		while lo < hi do
			local mid = math.floor((lo + hi) / 2)
			if cum[mid] < x then lo = mid + 1 else hi = mid end
		end
		reqs[d] = wrk.format("GET", "/" .. codes[lo], h)
	end
	n = #reqs
end

function request()
	i = i % n + 1
	return reqs[i]
end
