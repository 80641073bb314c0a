-- GET /{code}, codes drawn uniformly from $CODES (at most $MAX_CODES of
-- them, every $CODE_STRIDE-th line, so that a few spread over the file;
-- them), with a browser's User-Agent and a Referer as real clicks have.
-- Requests are formatted once in init(): the load generator's cost per
-- request is a table lookup, the same for every server measured.
-- $PIPELINE > 1 sends that many requests back to back per round trip.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")
local reqs = {}
local depth = tonumber(os.getenv("PIPELINE") or "1")
headers = {
	["User-Agent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
		.. "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
	["Referer"] = "https://news.example.org/item?id=12345",
}

function init(args)
	local max = tonumber(os.getenv("MAX_CODES") or "2000000")
	local stride, i = tonumber(os.getenv("CODE_STRIDE") or "1"), 0
	for code in io.lines(os.getenv("CODES")) do
		if i % stride == 0 then
			reqs[#reqs + 1] = wrk.format("GET", "/" .. code, headers)
			if #reqs >= max then break end
		end
		i = i + 1
	end
	math.randomseed(os.time())
end

function request()
	if depth <= 1 then
		return reqs[math.random(#reqs)]
	end
	local batch = {}
	for i = 1, depth do
		batch[i] = reqs[math.random(#reqs)]
	end
	return table.concat(batch)
end
