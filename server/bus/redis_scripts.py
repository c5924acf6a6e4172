"""The Lua scripts of the Redis backend (server/bus/redis.py): each is one atomic step."""

from __future__ import annotations

import re

# INCR, SET and PUBLISH in one script so a subscriber can never see a state that is not
# stored, nor a stored state whose seq was not published. The seq counter outlives the state so
# that a contact that comes back never reuses a seq a client has already seen; the caller's
# floor (the last seq it knows of) keeps seq rising even after Redis restarted empty. The
# queue's member set is scored by when each membership lapses: with the state (QUEUE_MEMBERS).
COMMIT = """
local seq = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[8])
if seq <= floor then
  seq = floor + 1
  redis.call('SET', KEYS[1], seq)
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
local msg = ARGV[1] .. seq .. '}'
redis.call('SET', KEYS[2], msg, 'PX', ARGV[2])
redis.call(ARGV[9], ARGV[3], msg)
if KEYS[3] then
  if redis.call('TYPE', KEYS[3]).ok == 'set' then redis.call('DEL', KEYS[3]) end
  if ARGV[5] == '1' then
    redis.call('ZREM', KEYS[3], ARGV[7])
  else
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[7])
    local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
    redis.call('PEXPIREAT', KEYS[3], last[2])
  end
  redis.call(ARGV[9], ARGV[4], msg)
end
return msg
"""

# On a cluster the queue's key and channel live in the queue's slot, not the contact's, so this
# runs as a second step after COMMIT (see RedisBackend.commit for why that is safe).
QUEUE_COMMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('TYPE', KEYS[1]).ok == 'set' then redis.call('DEL', KEYS[1]) end
if ARGV[1] == '1' then
  redis.call('ZREM', KEYS[1], ARGV[2])
else
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), ARGV[2])
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', KEYS[1], last[2])
end
redis.call('SPUBLISH', ARGV[3], ARGV[4])
return 1
"""

# A queue's members: a sorted set scored by when each membership lapses (the contact's state
# expires then too), so a contact nobody polls any more leaves the queue by itself; read with
# the lapsed ones dropped. (A plain set, written by an older version, is dropped: each live
# member is back with its next commit.)
QUEUE_MEMBERS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('TYPE', KEYS[1]).ok == 'set' then
  redis.call('DEL', KEYS[1])
  return {}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

# A contact leaves a queue's member set without an `ended` (nobody polls it any more).
LEAVE_QUEUE = """
if redis.call('TYPE', KEYS[1]).ok == 'set' then
  return redis.call('SREM', KEYS[1], ARGV[1])
end
return redis.call('ZREM', KEYS[1], ARGV[1])
"""

# See BusBackend.raise_floor. The state's seq is its last member, so its head is everything up
# to `"seq":`. The queue is known only from the stored state, so the queue channel's name comes
# as its two halves around the queue id (ARGV[6], ARGV[7]; server/bus/keys.py).
RAISE_FLOOR = """
local floor = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current >= floor then
  return {0, ''}
end
local seq = floor
local msg = nil
local state = redis.call('GET', KEYS[2])
if state then
  local head = string.match(state, '^(.*"seq":)%d+}$')
  if head then
    seq = floor + 1
    msg = head .. seq .. '}'
    local ttl = redis.call('PTTL', KEYS[2])
    if ttl > 0 then
      redis.call('SET', KEYS[2], msg, 'PX', ttl)
    else
      redis.call('SET', KEYS[2], msg)
    end
    redis.call(ARGV[4], ARGV[2], msg)
    local queue = string.match(state, '"queue":"([^"]*)"')
    if queue and ARGV[5] == '1' then
      redis.call(ARGV[4], ARGV[6] .. queue .. ARGV[7], msg)
    end
  end
end
redis.call('SET', KEYS[1], seq, 'PX', ARGV[3])
return {seq, msg or ''}
"""

# The queue a stored state belongs to, found as RAISE_FLOOR finds it.
QUEUE_IN_STATE = re.compile(rb'"queue":"([^"]*)"')
