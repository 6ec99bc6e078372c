"""The queue's Lua scripts: every multi-key state change of a job is one atomic script.

Times come from the Redis server clock (``TIME``), so workers with skewed clocks agree.
"""

# Every script starts with the server clock and the queue order: score = priority * band +
# an enqueue sequence number, so FIFO within a priority (10^12 enqueues per band).
_NOW = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local band = 1000000000000
"""

# KEYS: dedup, job, queued, wake, seq. ARGV: id, url key, payload, priority, max attempts,
# timeout s, dedup ttl ms, job prefix.
ENQUEUE = (
    _NOW
    + """
local existing = redis.call('GET', KEYS[1])
if existing then
  local st = redis.call('HGET', ARGV[8] .. existing, 'status')
  if st == 'queued' or st == 'active' or st == 'retrying' then return {existing, 0} end
end
redis.call('HSET', KEYS[2], 'id', ARGV[1], 'url_key', ARGV[2], 'payload', ARGV[3],
  'priority', ARGV[4], 'max_attempts', ARGV[5], 'timeout_s', ARGV[6], 'attempts', 0,
  'status', 'queued', 'created_ms', now, 'updated_ms', now)
local seq = redis.call('INCR', KEYS[5])
redis.call('ZADD', KEYS[3], string.format('%.0f', tonumber(ARGV[4]) * band + seq), ARGV[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[7])
redis.call('LPUSH', KEYS[4], 1)
redis.call('LTRIM', KEYS[4], 0, 63)
return {ARGV[1], 1}
"""
)

# KEYS: queued, delayed, active, dead, seq. ARGV: job prefix, dedup prefix, worker, token,
# lease ms, dead-job ttl ms, how many jobs at most. Returns a list of {id, url key, payload,
# priority, attempts, max attempts, timeout s}: one round trip leases a batch (the jobs share
# the token; job id + token name the lease), and only what the worker needs comes back.
DEQUEUE = (
    _NOW
    + """
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('ZREM', KEYS[2], id)
  local pr = tonumber(redis.call('HGET', ARGV[1] .. id, 'priority') or 1)
  local seq = redis.call('INCR', KEYS[5])
  redis.call('ZADD', KEYS[1], string.format('%.0f', pr * band + seq), id)
  redis.call('HSET', ARGV[1] .. id, 'status', 'queued', 'updated_ms', now)
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 100)) do
  local job = ARGV[1] .. id
  redis.call('ZREM', KEYS[3], id)
  local attempts = tonumber(redis.call('HGET', job, 'attempts') or 0)
  local max = tonumber(redis.call('HGET', job, 'max_attempts') or 1)
  local worker = redis.call('HGET', job, 'worker') or '?'
  local why = 'lease expired: worker ' .. worker .. ' stopped heartbeating'
    .. ' (attempt ' .. attempts .. ')'
  redis.call('HDEL', job, 'token')
  if attempts >= max then
    redis.call('HSET', job, 'status', 'dead', 'error', why, 'updated_ms', now)
    redis.call('RPUSH', KEYS[4], id)
    redis.call('PEXPIRE', job, ARGV[6])
    local dk = ARGV[2] .. (redis.call('HGET', job, 'url_key') or '')
    if redis.call('GET', dk) == id then redis.call('DEL', dk) end
  else
    -- Front of its priority band: it has waited already.
    local pr = tonumber(redis.call('HGET', job, 'priority') or 1)
    redis.call('ZADD', KEYS[1], string.format('%.0f', pr * band), id)
    redis.call('HSET', job, 'status', 'queued', 'error', why, 'updated_ms', now)
  end
end
local out = {}
local want = tonumber(ARGV[7])
while #out < want do
  local top = redis.call('ZPOPMIN', KEYS[1])
  if #top == 0 then break end
  local id = top[1]
  local job = ARGV[1] .. id
  -- A job hash that expired meanwhile is skipped, not mistaken for an empty queue.
  if redis.call('EXISTS', job) == 1 then
    redis.call('HINCRBY', job, 'attempts', 1)
    redis.call('HSET', job, 'status', 'active', 'worker', ARGV[3], 'token', ARGV[4],
      'started_ms', now, 'updated_ms', now)
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), id)
    local f = redis.call('HMGET', job, 'url_key', 'payload', 'priority', 'attempts',
      'max_attempts', 'timeout_s')
    out[#out + 1] = {id, f[1], f[2], f[3], f[4], f[5], f[6]}
  end
end
return out
"""
)

# KEYS: active, job. ARGV: id, token, lease ms.
HEARTBEAT = (
    _NOW
    + """
if redis.call('HGET', KEYS[2], 'token') ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[3]), ARGV[1])
return 1
"""
)

# KEYS: active, job, dedup. ARGV: id, token, result json, ttl ms.
COMPLETE = (
    _NOW
    + """
if redis.call('HGET', KEYS[2], 'token') ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'status', 'done', 'result', ARGV[3], 'updated_ms', now)
redis.call('HDEL', KEYS[2], 'token', 'error')
redis.call('PEXPIRE', KEYS[2], ARGV[4])
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
return 1
"""
)

# KEYS: active, delayed, dead, job, dedup. ARGV: id, token, error, retryable, delay ms, ttl ms.
FAIL = (
    _NOW
    + """
if redis.call('HGET', KEYS[4], 'token') ~= ARGV[2] then return false end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[4], 'token')
local attempts = tonumber(redis.call('HGET', KEYS[4], 'attempts') or 0)
local max = tonumber(redis.call('HGET', KEYS[4], 'max_attempts') or 1)
if ARGV[4] == '1' and attempts < max then
  redis.call('HSET', KEYS[4], 'status', 'retrying', 'error', ARGV[3], 'updated_ms', now)
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), ARGV[1])
  return 'retrying'
end
redis.call('HSET', KEYS[4], 'status', 'dead', 'error', ARGV[3], 'updated_ms', now)
redis.call('RPUSH', KEYS[3], ARGV[1])
redis.call('LTRIM', KEYS[3], -100000, -1)
redis.call('PEXPIRE', KEYS[4], ARGV[6])
if redis.call('GET', KEYS[5]) == ARGV[1] then redis.call('DEL', KEYS[5]) end
return 'dead'
"""
)
