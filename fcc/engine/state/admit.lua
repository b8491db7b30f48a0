-- fcc's admission, atomically in Redis: the same rules as state/admission.py admit(), so a
-- limit holds across every process and machine sharing this server. Python computes the
-- waits from what a refusal returns; this script only decides and takes.
--
-- ARGV: prefix, now, lease id, candidate, trial ttl, lease ttl, quota ttl, scopes,
-- then per scope: key, rpm, streams, requests/day, tokens/day, bucket count, buckets...
-- (a limit of "" is none). Returns {"ok", trial, held keys...} or
-- {"refused", entries...} with entries "circuit|STORED CIRCUIT JSON",
-- "rpm|scope|oldest_needed", "quota|scope|kind|n1,n2,...", "streams|scope".
local P = ARGV[1]
local now = tonumber(ARGV[2])
local lease = ARGV[3]
local cand = ARGV[4]
local trial_ttl = tonumber(ARGV[5])
local lease_ttl = tonumber(ARGV[6])
local quota_ttl = tonumber(ARGV[7])
local n = tonumber(ARGV[8])

local refused = {}
local trial = false
local ckey = P .. ":circuit:" .. cand
local raw = redis.call("GET", ckey)
local state = nil
if raw then
  state = cjson.decode(raw)
  local open_until = tonumber(state.open_until) or 0
  if open_until ~= 0 then
    local trial_until = tonumber(state.trial_until) or 0
    if now < open_until or now < trial_until then
      return {"refused", "circuit|" .. raw}
    end
    trial = true
  end
end

local scopes = {}
local i = 9
for s = 1, n do
  local scope = {key = ARGV[i], rpm = tonumber(ARGV[i + 1]), streams = tonumber(ARGV[i + 2]),
                 rpd = tonumber(ARGV[i + 3]), tpd = tonumber(ARGV[i + 4]), buckets = {}}
  local nb = tonumber(ARGV[i + 5])
  for b = 1, nb do scope.buckets[b] = ARGV[i + 5 + b] end
  i = i + 6 + nb
  scopes[s] = scope
  if scope.rpm then
    local win = P .. ":win:" .. scope.key
    redis.call("ZREMRANGEBYSCORE", win, "-inf", now - 60)
    local count = redis.call("ZCARD", win)
    if count >= scope.rpm then
      local oldest = redis.call("ZRANGE", win, count - scope.rpm, count - scope.rpm, "WITHSCORES")
      table.insert(refused, "rpm|" .. s .. "|" .. oldest[2])
    end
  end
  if scope.rpd or scope.tpd then
    local reqs, toks = {}, {}
    local sum_r, sum_t = 0, 0
    for b, bucket in ipairs(scope.buckets) do
      local got = redis.call("HMGET", P .. ":quota:" .. scope.key .. ":" .. bucket, "requests", "tokens")
      local r, t = tonumber(got[1]) or 0, tonumber(got[2]) or 0
      reqs[b], toks[b] = r, t
      sum_r, sum_t = sum_r + r, sum_t + t
    end
    if scope.rpd and sum_r >= scope.rpd then
      table.insert(refused, "quota|" .. s .. "|requests|" .. table.concat(reqs, ","))
    end
    if scope.tpd and sum_t >= scope.tpd then
      table.insert(refused, "quota|" .. s .. "|tokens|" .. table.concat(toks, ","))
    end
  end
  if scope.streams then
    local held = P .. ":lease:" .. scope.key
    redis.call("ZREMRANGEBYSCORE", held, "-inf", now)
    if redis.call("ZCARD", held) >= scope.streams then
      table.insert(refused, "streams|" .. s)
    end
  end
end
if #refused > 0 then
  table.insert(refused, 1, "refused")
  return refused
end

if trial and state then
  state.trial_until = now + trial_ttl
  redis.call("SET", ckey, cjson.encode(state), "EX", 86400 * 7)
end
local out = {"ok", trial and "1" or "0"}
for s, scope in ipairs(scopes) do
  if scope.rpm then
    local win = P .. ":win:" .. scope.key
    redis.call("ZADD", win, now, lease .. ":" .. s)
    redis.call("EXPIRE", win, 120)
  end
  if scope.rpd or scope.tpd then
    local q = P .. ":quota:" .. scope.key .. ":" .. scope.buckets[#scope.buckets]
    redis.call("HINCRBY", q, "requests", 1)
    redis.call("EXPIRE", q, quota_ttl)
  end
  if scope.streams then
    local held = P .. ":lease:" .. scope.key
    redis.call("ZADD", held, now + lease_ttl, lease)
    redis.call("EXPIRE", held, lease_ttl * 2)
    table.insert(out, scope.key)
  end
end
return out
