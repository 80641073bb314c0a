-- POST /api/v1/links with an admin key ($SHORTD_KEY) and a new URL each
-- time: durable creates. $MIX_GETS > 0 sends that many GETs of $CODES
-- (uniform) before each create: the mixed scenario.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")
local gets, mix, n, seq = {}, tonumber(os.getenv("MIX_GETS") or "0"), 0, 0
local prefix = tostring(math.random(1, 1e9))
local hdr = {
	["Content-Type"] = "application/json",
	["Authorization"] = "Bearer " .. os.getenv("SHORTD_KEY"),
}

function init(args)
	math.randomseed(os.time())
	prefix = tostring(math.random(1, 1e9))
	if mix > 0 then
		for code in io.lines(os.getenv("CODES")) do
			gets[#gets + 1] = wrk.format("GET", "/" .. code)
			if #gets >= 200000 then break end
		end
	end
end

function request()
	n = n + 1
	if mix > 0 and n % (mix + 1) ~= 0 then
		return gets[math.random(#gets)]
	end
	seq = seq + 1
	return wrk.format("POST", "/api/v1/links", hdr,
		'{"url":"https://example.com/bench/' .. prefix .. '/' .. seq .. '"}')
end
