-- wrk script: GET /{code} for codes drawn uniformly from the file $CODES.
-- Requests are formatted once in init(), so the load generator's cost per
-- request is a table lookup, the same for shortd and for the baseline.
local reqs = {}

function init(args)
	for code in io.lines(os.getenv("CODES")) do
		reqs[#reqs + 1] = wrk.format("GET", "/" .. code)
	end
	math.randomseed(os.time())
end

function request()
	return reqs[math.random(#reqs)]
end
