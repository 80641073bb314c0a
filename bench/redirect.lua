-- wrk script: GET /{code} for codes drawn uniformly from the file $CODES,
-- with a browser's User-Agent and a Referer, as real clicks have.
-- Requests are formatted once in init(), so the load generator's cost per
-- request is a table lookup, the same for every server measured.
local reqs = {}
local headers = {
	["User-Agent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
		.. "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
	["Referer"] = "https://news.example.org/item?id=12345",
}

function init(args)
	for code in io.lines(os.getenv("CODES")) do
		reqs[#reqs + 1] = wrk.format("GET", "/" .. code, headers)
	end
	math.randomseed(os.time())
end

function request()
	return reqs[math.random(#reqs)]
end
