-- The requests of one benchmark scenario, for wrk (https://github.com/wg/wrk).
--
--   wrk ... -s wrk.lua <url> -- <scenario> <max movie id> <max cast id> <seed>
--
-- Each thread builds a few thousand requests in init() and cycles through them:
-- wrk's scripting guide warns that building a request per call is what costs,
-- and the generator shares the machine with what it measures. No response()
-- function, so wrk never hands headers or bodies to Lua. done() prints the
-- figures as one JSON line after the marker, for e2e/bench to parse.

local marker = "@@wrk-result "
local prebuilt = 4096

local requests = {}
local next_index = 1

local genres = { "Drama", "Comedy", "Thriller", "Documentary", "Animation", "Crime", "Romance", "Horror" }

local function cast_ids(max_cast, count)
  local seen, ids = {}, {}
  while #ids < count do
    local id = math.random(max_cast)
    if not seen[id] then
      seen[id] = true
      ids[#ids + 1] = id
    end
  end
  return table.concat(ids, ",")
end

local json = { ["Content-Type"] = "application/json" }
local merge_patch = { ["Content-Type"] = "application/merge-patch+json" }

local builders = {
  ["get-movie"] = function(max_movie, max_cast, n)
    return wrk.format("GET", "/api/v1/movies/" .. math.random(max_movie))
  end,
  ["list-movies"] = function(max_movie, max_cast, n)
    -- A random page: keyset pagination makes every page cost the same.
    return wrk.format("GET", "/api/v1/movies?limit=50&after=" .. math.random(0, math.max(0, max_movie - 50)))
  end,
  ["post-cast"] = function(max_movie, max_cast, n)
    local body = string.format('{"name":"Bench cast %d","nationality":"French"}', n)
    return wrk.format("POST", "/api/v1/casts", json, body)
  end,
  ["post-movie"] = function(max_movie, max_cast, n)
    local body = string.format(
      '{"name":"Bench movie %d","plot":"A film written by the benchmark.","genres":["%s"],"cast_ids":[%s]}',
      n, genres[math.random(#genres)], cast_ids(max_cast, math.random(10)))
    return wrk.format("POST", "/api/v1/movies", json, body)
  end,
  ["patch-movie"] = function(max_movie, max_cast, n)
    -- Changes the plot only: the cast list stays, so no cast check (POST movie covers that).
    local body = string.format('{"plot":"Patched by the benchmark, edit %d."}', n)
    return wrk.format("PATCH", "/api/v1/movies/" .. math.random(max_movie), merge_patch, body)
  end,
}

local thread_count = 0
function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
end

function init(args)
  local scenario = args[1]
  local max_movie, max_cast, seed = tonumber(args[2]), tonumber(args[3]), tonumber(args[4])
  -- The writes carry a real access token of the stack's provider (args[5]), fetched for each run.
  local token = args[5]
  if token ~= nil and token ~= "" then
    json["Authorization"] = "Bearer " .. token
    merge_patch["Authorization"] = "Bearer " .. token
  end
  local build = builders[scenario]
  if build == nil or max_movie == nil or max_cast == nil or seed == nil then
    error("usage: -- <scenario> <max movie id> <max cast id> <seed> [token]; unknown scenario " .. tostring(scenario))
  end
  math.randomseed(seed + 7919 * (thread_number or 0))
  for i = 1, prebuilt do
    requests[i] = build(max_movie, max_cast, (thread_number or 0) * 1000000 + i)
  end
end

function request()
  local r = requests[next_index]
  next_index = next_index % prebuilt + 1
  return r
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(marker, string.format(
    '{"duration_us":%d,"requests":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
