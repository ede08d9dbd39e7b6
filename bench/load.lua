-- wrk script for bench/run.py: one request kind per run, chosen by BENCH_MODE.
--   hello: GET / on the bare Tornado app (the ceiling), same headers as "get".
--   post:  a callback POST. Request k calls back as host (k mod N) to template
--          FIRST + (k div N) mod T, so every (template, host) pair is new until
--          N*T requests: each is a 202 creating one job. Later ones are the
--          expected 400 "Host callback job already pending.", counted apart.
--   verified: the same callback POSTs, but each body carries the host's signed
--          AWS identity (line host + 1 of BENCH_BODIES, bench/world.py
--          sign_identities) and no X-Forwarded-For: every host calls from
--          127.0.0.1, as behind NAT, and only the identity tells them apart.
--   get:   the admin GET (Bearer token) of template FIRST, for a random host.
-- Each host is 10.a.b.c from index + 1 (bench/world.py host_address), named by
-- X-Forwarded-For; wrk's peer 127.0.0.1 is the trusted proxy (bench/plugins.toml).
-- done() prints one "BENCH key value" line per figure; bench/run.py parses them,
-- and writes the latency histogram to BENCH_LATENCY ("microseconds count" lines),
-- so that bench/run.py can take percentiles over the rounds of a row together.
-- A POST run (post or verified) starts at request BENCH_OFFSET (the next_offset
-- the previous POST round printed), so that every round calls back as new
-- (template, host) pairs. One wrk thread (-t1): threads would each count from the same offset.

local mode = os.getenv("BENCH_MODE")
local hosts = tonumber(os.getenv("BENCH_HOSTS") or "1")
local first = tonumber(os.getenv("BENCH_FIRST_TEMPLATE") or "1")
local templates = tonumber(os.getenv("BENCH_TEMPLATES") or "1")
local key = os.getenv("BENCH_KEY") or ""
local token = os.getenv("BENCH_TOKEN") or ""
local ids_file = os.getenv("BENCH_JOB_IDS")
local latency_file = os.getenv("BENCH_LATENCY")

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

k = tonumber(os.getenv("BENCH_OFFSET") or "0")
n200, n202, n400_pending, n_other = 0, 0, 0, 0
other_status, other_body = "", ""
job_ids = {}

local function address(index)
   local n = index + 1
   return string.format("10.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
end

local post_body = '{"host_config_key": "' .. key .. '"}'
local bodies = {}
if mode == "verified" then
   for line in io.lines(os.getenv("BENCH_BODIES")) do
      if #bodies == hosts then break end
      bodies[#bodies + 1] = line
   end
end

function request()
   local host, path
   local headers = {}
   if mode == "post" or mode == "verified" then
      host = k % hosts
      path = string.format("/api/v2/job_templates/%d/callback/", first + math.floor(k / hosts) % templates)
      k = k + 1
      headers["Content-Type"] = "application/json"
      if mode == "verified" then
         return wrk.format("POST", path, headers, bodies[host + 1])
      end
      headers["X-Forwarded-For"] = address(host)
      return wrk.format("POST", path, headers, post_body)
   end
   host = math.random(0, hosts - 1)
   headers["X-Forwarded-For"] = address(host)
   if mode == "get" then
      headers["Authorization"] = "Bearer " .. token
      path = string.format("/api/v2/job_templates/%d/callback/", first)
   else
      path = "/"
   end
   return wrk.format("GET", path, headers)
end

function response(status, headers, body)
   if status == 200 then
      n200 = n200 + 1
   elseif status == 202 then
      n202 = n202 + 1
      table.insert(job_ids, string.match(body or "", '"job":%s*(%d+)') or "none")
   elseif status == 400 and body and string.find(body, "already pending", 1, true) then
      n400_pending = n400_pending + 1
   else
      n_other = n_other + 1
      other_status = tostring(status)
      other_body = string.sub(body or "", 1, 200)
   end
end

function done(summary, latency, requests)
   local totals = {n200 = 0, n202 = 0, n400_pending = 0, n_other = 0}
   local last_status, last_body = "", ""
   for _, thread in ipairs(threads) do
      for name, _ in pairs(totals) do
         totals[name] = totals[name] + thread:get(name)
      end
      if thread:get("n_other") > 0 then
         last_status, last_body = thread:get("other_status"), thread:get("other_body")
      end
   end
   io.write(string.format("BENCH requests %d\n", summary.requests))
   io.write(string.format("BENCH duration_us %d\n", summary.duration))
   io.write(string.format("BENCH connect_errors %d\n", summary.errors.connect))
   io.write(string.format("BENCH read_errors %d\n", summary.errors.read))
   io.write(string.format("BENCH write_errors %d\n", summary.errors.write))
   io.write(string.format("BENCH timeouts %d\n", summary.errors.timeout))
   for name, value in pairs(totals) do
      io.write(string.format("BENCH %s %d\n", name, value))
   end
   if ids_file then  -- the job id of every 202, one per line, for bench/run.py to check
      local out = assert(io.open(ids_file, "w"))
      for _, thread in ipairs(threads) do
         for _, id in ipairs(thread:get("job_ids")) do
            out:write(id, "\n")
         end
      end
      out:close()
   end
   if latency_file then
      local out = assert(io.open(latency_file, "w"))
      for i = 1, #latency do  -- latency(i): the i-th distinct latency and how many requests took it
         local value, count = latency(i)
         out:write(string.format("%d %d\n", value, count))
      end
      out:close()
   end
   io.write(string.format("BENCH next_offset %d\n", threads[1]:get("k")))
   io.write(string.format("BENCH other_status %s\n", last_status))
   io.write(string.format("BENCH other_body %s\n", (string.gsub(last_body, "\n", " "))))
end
