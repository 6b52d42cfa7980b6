-- The bench's requests through wrk (Debian's wrk 4.1, LuaJIT), driven by bench/wrk.py.
--
-- Each wrk thread cycles through its share of the prepared requests (thread t takes the
-- requests t, t + T, ...), adds a per-request Idempotency-Key to those that want one and an
-- X-Request-ID of its own to every request. The server echoes the request id, so each
-- response is matched with its request: one record per request (when it ended, its latency,
-- status, SQL statement count, error code, which prepared request it was), as bench.load's
-- Python generator keeps them.
--
-- wrk itself stops at -d and drops whatever is in flight then; a purchase the server made but
-- nobody counted would break the bench's sold-versus-paid check. So the script stops on its own:
-- once its time (BENCH_WRK_DURATION) or request bound (BENCH_WRK_MAX) is reached it hands wrk
-- an empty request (the connection falls idle), waits for the answers still in flight, then
-- stops its thread; the last thread to finish ends the run with SIGINT (wrk's own way to stop
-- early). -d is only the backstop for answers that never come.
--
-- Settings come from the environment (every Lua state reads it; wrk gives script arguments to
-- the threads only):
--   BENCH_WRK_REQUESTS  the prepared requests: "<head bytes> <body bytes> <0|1 idempotent>\n"
--                       then the head (request line and headers, each ending CRLF, no blank
--                       line) and the body, for each request
--   BENCH_WRK_OUT       where done() writes the records and wrk's own figures
--   BENCH_WRK_THREADS, BENCH_WRK_DURATION (s), BENCH_WRK_MAX (requests in all),
--   BENCH_WRK_IDEMPOTENCY (key prefix, empty for none), BENCH_WRK_QUERY_HEADER

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
int kill(int pid, int sig);
int getpid(void);
]])
local C = ffi.C
local CLOCK_MONOTONIC = 1
local SIGINT = 2
local clock = ffi.new("bench_timespec")

local function now_us()
  C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1000000 + math.floor(tonumber(clock.tv_nsec) / 1000)
end

local OUT = os.getenv("BENCH_WRK_OUT")
local THREADS = tonumber(os.getenv("BENCH_WRK_THREADS") or "1")
local QUERY_HEADER = os.getenv("BENCH_WRK_QUERY_HEADER") or "X-Bench-Queries"
local QUERY_HEADER_LOWER = string.lower(QUERY_HEADER)

-- --- the main Lua state: thread registry and the report ----------------------------------

local registry = {}

function setup(thread)
  thread:set("id", #registry)
  registry[#registry + 1] = thread
end

-- --- each thread's Lua state --------------------------------------------------------------

-- Globals, so done() can read them with thread:get().
heads, bodies, idempotent, index = {}, {}, {}, {}
r_end, r_latency, r_status, r_queries, r_index, r_code = {}, {}, {}, {}, {}, {}
sent_at, sent_position = {}, {}
t0, issued, answered, records, closed, uncorrelated = -1, 0, 0, 0, 0, 0

local count, max_requests, duration_us, deadline = 0, 0, 0, nil
local key_prefix, id_prefix, id_pattern = nil, nil, nil
local verifying, stopping, finished = false, false, false

function init(args)
  local file = assert(io.open(os.getenv("BENCH_WRK_REQUESTS"), "rb"))
  local data = file:read("*a")
  file:close()
  local pos, k = 1, 0
  while pos <= #data do
    local eol = string.find(data, "\n", pos, true)
    local head_len, body_len, flag = string.match(string.sub(data, pos, eol - 1), "^(%d+) (%d+) ([01])$")
    head_len, body_len = tonumber(head_len), tonumber(body_len)
    if k % THREADS == id then
      count = count + 1
      heads[count] = string.sub(data, eol + 1, eol + head_len)
      bodies[count] = string.sub(data, eol + head_len + 1, eol + head_len + body_len)
      idempotent[count] = flag == "1"
      index[count] = k
    end
    pos = eol + head_len + body_len + 1
    k = k + 1
  end
  assert(count > 0, "no requests for thread " .. id)
  local total = tonumber(os.getenv("BENCH_WRK_MAX"))
  max_requests = math.floor(total / THREADS) + ((id < total % THREADS) and 1 or 0)
  duration_us = tonumber(os.getenv("BENCH_WRK_DURATION")) * 1000000
  local prefix = os.getenv("BENCH_WRK_IDEMPOTENCY") or ""
  if prefix ~= "" then
    key_prefix = prefix .. "-" .. id .. "-"
  end
  id_prefix = "wrk" .. id .. "-"
  id_pattern = "^wrk" .. id .. "%-(%d+)$"
  -- wrk calls the first thread's request() once before the run, to check it; that one is not sent.
  verifying = id == 0
end

-- This thread's records, written by the thread itself once all its requests are answered, so a
-- wrk that dies while it tears the run down (seen: SIGSEGV after every thread had drained, about
-- one short run in thirty) loses nothing; done() writes only the threads that never got here.
local function write_records()
  local out = assert(io.open(OUT .. ".thread." .. id, "w"))
  out:write(string.format("thread %d %.0f %d %d %d %d\n", id, t0, issued, answered, closed, uncorrelated))
  for i = 1, records do
    out:write(
      string.format(
        "r %d %.0f %.0f %d %d %d %s\n",
        id,
        r_end[i],
        r_latency[i],
        r_status[i],
        r_queries[i],
        r_index[i],
        r_code[i] or ""
      )
    )
  end
  out:close()
end

local function finish()
  if finished then
    return
  end
  finished = true
  write_records()
  local mark = assert(io.open(OUT .. ".drained." .. id, "w"))
  mark:close()
  local all = true
  for other = 0, THREADS - 1 do
    local seen = io.open(OUT .. ".drained." .. other, "r")
    if seen then
      seen:close()
    else
      all = false
    end
  end
  wrk.thread:stop()
  if all then
    C.kill(C.getpid(), SIGINT)
  end
end

function request()
  if verifying then
    verifying = false
    return heads[1] .. "X-Request-ID: verify\r\n\r\n" .. bodies[1]
  end
  local now = now_us()
  if deadline == nil then
    t0 = now
    deadline = now + duration_us
  end
  if stopping or issued >= max_requests or now >= deadline then
    stopping = true
    if answered >= issued then
      finish()
    end
    return "" -- nothing to send: the connection stays idle
  end
  issued = issued + 1
  local seq = issued
  local position = (seq - 1) % count + 1
  sent_at[seq] = now
  sent_position[seq] = position
  local key = ""
  if key_prefix and idempotent[position] then
    key = "Idempotency-Key: " .. key_prefix .. seq .. "\r\n"
  end
  return heads[position] .. key .. "X-Request-ID: " .. id_prefix .. seq .. "\r\n\r\n" .. bodies[position]
end

local function error_code(body)
  local at = string.find(body, '"error"', 1, true)
  if not at then
    return "?"
  end
  return string.match(body, '"code"%s*:%s*"([^"]*)"', at) or "?"
end

local function oldest_in_flight()
  local oldest = nil
  for seq, started in pairs(sent_at) do
    if oldest == nil or started < sent_at[oldest] then
      oldest = seq
    end
  end
  return oldest
end

function response(status, headers, body)
  local now = now_us()
  answered = answered + 1
  local rid = headers["X-Request-ID"] or headers["x-request-id"]
  local seq = rid and tonumber(string.match(rid, id_pattern))
  local n = records + 1
  records = n
  if not (seq and sent_at[seq]) then
    -- Not our id back (a response from below the application): charge it to the oldest request
    -- in flight, whose age bounds its latency from above.
    uncorrelated = uncorrelated + 1
    seq = oldest_in_flight()
  end
  if seq then
    r_latency[n] = now - sent_at[seq]
    r_index[n] = index[sent_position[seq]]
    sent_at[seq] = nil
    sent_position[seq] = nil
  else
    r_latency[n] = 0
    r_index[n] = -1
  end
  r_end[n] = now - t0
  r_status[n] = status
  local queries = headers[QUERY_HEADER] or headers[QUERY_HEADER_LOWER]
  r_queries[n] = queries and tonumber(queries) or -1
  if status >= 300 then
    r_code[n] = error_code(body)
  end
  local connection = headers["Connection"] or headers["connection"]
  if connection and string.lower(connection) == "close" then
    closed = closed + 1
  end
  if stopping and answered >= issued then
    finish()
  end
end

-- --- back in the main state, after every thread has stopped ------------------------------

function done(summary, latency, requests)
  local out = assert(io.open(OUT, "w"))
  local e = summary.errors
  out:write(
    string.format(
      "summary %d %d %d %d %d %d %d %d\n",
      summary.duration,
      summary.requests,
      summary.bytes,
      e.connect,
      e.read,
      e.write,
      e.status,
      e.timeout
    )
  )
  out:write(
    string.format(
      "latency %.0f %.0f %.0f %.0f %.0f %.1f\n",
      latency:percentile(50),
      latency:percentile(95),
      latency:percentile(99),
      latency:percentile(99.9),
      latency.max,
      latency.mean
    )
  )
  local now = now_us()
  for _, thread in ipairs(registry) do
    local tid, start = thread:get("id"), thread:get("t0")
    local written = io.open(OUT .. ".thread." .. tid, "r")
    if written then
      written:close()
      goto next_thread -- it wrote its own records when it drained
    end
    out:write(
      string.format(
        "thread %d %.0f %d %d %d %d\n",
        tid,
        start,
        thread:get("issued"),
        thread:get("answered"),
        thread:get("closed"),
        thread:get("uncorrelated")
      )
    )
    local ends, lats, statuses = thread:get("r_end"), thread:get("r_latency"), thread:get("r_status")
    local queries, indexes, codes = thread:get("r_queries"), thread:get("r_index"), thread:get("r_code")
    for i = 1, thread:get("records") do
      out:write(
        string.format(
          "r %d %.0f %.0f %d %d %d %s\n",
          tid,
          ends[i],
          lats[i],
          statuses[i],
          queries[i],
          indexes[i],
          codes[i] or ""
        )
      )
    end
    -- Sent but never answered (the connection broke, or -d came first): no response.
    local pending, positions, thread_index = thread:get("sent_at"), thread:get("sent_position"), thread:get("index")
    for seq, started in pairs(pending) do
      out:write(
        string.format("r %d %.0f %.0f 0 -1 %d no_response\n", tid, now - start, now - started, thread_index[positions[seq]])
      )
    end
    ::next_thread::
  end
  out:close()
end
