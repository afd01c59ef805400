-- bench/api/post.lua: the wrk script of bench/run_api.sh (api/measure.sh calls
-- it). Every request is a POST of one JSON body, keep-alive, no pipelining;
-- the arguments follow the URL after `--`, as key=value words:
--
--   wrk -t1 -c N -d S -s post.lua URL -- body=FILE [token=JWT]
--
-- body   the file whose bytes every request posts (Content-Type:
--        application/json)
-- token  sent as "Authorization: Bearer <token>" (api.jwt)
--
-- No response() hook: it would cost wrk CPU per response. measure.sh relies
-- on wrk's count of non-2xx statuses and on the bytes read adding up to
-- whole responses of the size the readiness check saw.
--
-- done() prints one line of key=value pairs for measure.sh:
--   wrkdone requests= duration_us= bytes= connect= read= write= status=
--           timeout= mean_us= p50_us= p99_us= max_us=

function init(args)
    local opt = {}
    for _, a in ipairs(args) do
        local k, v = string.match(a, "^([%w_]+)=(.*)$")
        if k then
            opt[k] = v
        end
    end
    local f = assert(io.open(opt.body or "", "rb"), "post.lua: body=FILE is required")
    local body = f:read("*a")
    f:close()
    wrk.method = "POST"
    wrk.body = body
    wrk.headers["Content-Type"] = "application/json"
    if opt.token and opt.token ~= "" then
        wrk.headers["Authorization"] = "Bearer " .. opt.token
    end
end

local function int(x)
    return math.floor(tonumber(x) or 0)
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "wrkdone requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d" ..
            " timeout=%d mean_us=%d p50_us=%d p99_us=%d max_us=%d\n",
        int(summary.requests), int(summary.duration), int(summary.bytes), int(e.connect),
        int(e.read), int(e.write), int(e.status), int(e.timeout), int(latency.mean),
        int(latency:percentile(50)), int(latency:percentile(99)), int(latency.max)))
end
