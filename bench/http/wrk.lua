-- bench/http/wrk.lua: the wrk script behind every run of bench/run_http.sh
-- (measure.sh and soak.sh call it; the arguments follow the URL after `--`,
-- as key=value words, every one optional):
--
--   wrk -t1 -c N -d S -s wrk.lua URL -- depth=D check=C body=B conns=N post=P
--
-- depth  requests written at once on each connection (pipelining); 1 (the
--        default) = none, and then no request() function either, so that wrk
--        keeps its static request and its full speed.
-- check  1: a response() hook checks every response: a 200 with exactly
--        `body` (when given) is good, anything else bad; it notes when the
--        first `conns` good responses had come (one per connection: the
--        first round of a sleeping route) and when the last one came. The
--        hook costs wrk CPU (it builds a header table per response), so only
--        the slow /async-endpoint figure uses it; the fast figures rely on
--        wrk's own count of non-2xx statuses and on the bytes read adding up
--        to whole responses of the expected size (measure.sh).
-- post   P > 0: every request is a POST of a P-byte body
--        (application/octet-stream), for /echo (http.soak).
--
-- done() prints one line of key=value pairs for measure.sh and soak.sh:
--   wrkdone requests= duration_us= bytes= connect= read= write= status=
--           timeout= mean_us= p50_us= p99_us= max_us=
--           [good= bad= span_us= round_us=]
-- (latencies are wrk's, in microseconds; with check=1: span_us from the start
-- of the run to the last good response, round_us to the conns-th good one,
-- 0 if there were fewer).

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } weave_bench_timespec;
int clock_gettime(int clk, weave_bench_timespec *ts);
]]
local ts = ffi.new("weave_bench_timespec")

local function now_us()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    local opt = {}
    for _, a in ipairs(args) do
        local k, v = string.match(a, "^([%w_]+)=(.*)$")
        if k then
            opt[k] = v
        end
    end
    local post = tonumber(opt.post or "0") or 0
    if post > 0 then
        wrk.method = "POST"
        wrk.body = string.rep("x", post)
        wrk.headers["Content-Type"] = "application/octet-stream"
    end
    local depth = tonumber(opt.depth or "1") or 1
    if depth > 1 then
        local r = {}
        for i = 1, depth do
            r[i] = wrk.format()
        end
        local batch = table.concat(r)
        request = function()
            return batch
        end
    end
    if opt.check == "1" then
        local want = opt.body
        if want == "" then
            want = nil
        end
        local round = tonumber(opt.conns or "0") or 0
        good, bad, t_first, t_last, t_round = 0, 0, now_us(), 0, 0
        response = function(status, headers, body)
            if status ~= 200 or (want and body ~= want) then
                bad = bad + 1
                return
            end
            good = good + 1
            t_last = now_us()
            if good == round then
                t_round = t_last
            end
        end
    end
end

local function int(x)
    return math.floor(tonumber(x) or 0)
end

function done(summary, latency, requests)
    local e = summary.errors
    local line = string.format(
        "wrkdone requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d" ..
            " timeout=%d mean_us=%d p50_us=%d p99_us=%d max_us=%d",
        int(summary.requests), int(summary.duration), int(summary.bytes), int(e.connect),
        int(e.read), int(e.write), int(e.status), int(e.timeout), int(latency.mean),
        int(latency:percentile(50)), int(latency:percentile(99)), int(latency.max))
    if threads[1] and threads[1]:get("good") then
        local good, bad, span, round = 0, 0, 0, 0
        for _, t in ipairs(threads) do
            good = good + t:get("good")
            bad = bad + t:get("bad")
            if t:get("good") > 0 then
                span = math.max(span, t:get("t_last") - t:get("t_first"))
            end
            if t:get("t_round") > 0 then
                round = math.max(round, t:get("t_round") - t:get("t_first"))
            end
        end
        line = line .. string.format(" good=%d bad=%d span_us=%d round_us=%d", good, bad,
            int(span), int(round))
    end
    io.write(line .. "\n")
end
