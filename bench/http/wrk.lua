-- bench/http/wrk.lua: the wrk script behind every run of bench/run_http.sh
-- (measure.sh calls it; the arguments follow the URL after `--`):
--
--   wrk -t1 -c N -d S -s wrk.lua URL -- DEPTH CHECK [BODY]
--
-- DEPTH  requests written at once on each connection (pipelining); 1 = none,
--        and then no request() function either, so that wrk keeps its static
--        request and its full speed.
-- CHECK  1: a response() hook counts every response that is not a 200 with
--        exactly BODY (when BODY is given) and notes when the last one came.
--        The hook costs wrk CPU (it builds a header table per response), so
--        only the slow /async-endpoint figure uses it; the fast figures rely
--        on wrk's own count of non-2xx statuses and on the bytes read adding
--        up to whole responses of the expected size (measure.sh).
--
-- done() prints one line of key=value pairs for measure.sh:
--   wrkdone requests= duration_us= bytes= connect= read= write= status=
--           timeout= mean_us= p50_us= p99_us= max_us= [checked= bad= span_us=]
-- (latencies are wrk's, in microseconds; span_us: from the start of the run
-- to the last response, which the CHECK hook measures).

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
    local depth = tonumber(args[1]) or 1
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
    if args[2] == "1" then
        local want = args[3]
        if want == "" then
            want = nil
        end
        checked, bad, t_first, t_last = 0, 0, now_us(), 0
        response = function(status, headers, body)
            checked = checked + 1
            if status ~= 200 or (want and body ~= want) then
                bad = bad + 1
            end
            t_last = now_us()
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
    if threads[1] and threads[1]:get("checked") then
        local checked, bad, span = 0, 0, 0
        for _, t in ipairs(threads) do
            checked = checked + t:get("checked")
            bad = bad + t:get("bad")
            if t:get("checked") > 0 then
                span = math.max(span, t:get("t_last") - t:get("t_first"))
            end
        end
        line = line .. string.format(" checked=%d bad=%d span_us=%d", checked, bad, int(span))
    end
    io.write(line .. "\n")
end
