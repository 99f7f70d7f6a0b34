"""The Redis scripts of the shared barrier (api/shared.py): each runs atomically in Redis.
Keys and values are described in api/shared.py's docstring."""

# KEYS s m c w; ARGV slot sample meta ttl -> {outcome, stored sample or count, claim, meta}
ADD = """
local c = redis.call('GET', KEYS[3])
if c and string.sub(c, 1, 7) == 'failed:' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3]); c = false
end
local have = redis.call('HGET', KEYS[1], ARGV[1])
if have then
  redis.call('INCR', KEYS[4]); redis.call('EXPIRE', KEYS[4], ARGV[4])
  return {'have', have, c or '', redis.call('GET', KEYS[2]) or ''}
end
if c then return {'late', '', c, ''} end
if redis.call('EXISTS', KEYS[1]) == 0 then  -- a new (or emptied) group starts its clock
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('INCR', KEYS[4]); redis.call('EXPIRE', KEYS[4], ARGV[4])
return {'added', tostring(redis.call('HLEN', KEYS[1])), '', redis.call('GET', KEYS[2])}
"""
# KEYS s c; ARGV token ttl -> {} if taken, else the frozen samples (HGETALL)
CLAIM = """
if redis.call('EXISTS', KEYS[2]) == 1 then return {} end
redis.call('SET', KEYS[2], 'scoring:' .. ARGV[1], 'EX', ARGV[2])
local all = redis.call('HGETALL', KEYS[1])
table.insert(all, 1, 'ok')
return all
"""
# KEYS g; ARGV seen new: the current generation of a reusable key, rolled over when `seen`
# (already claimed) is still current. Generation ids are random: a scored group's
# request id never collides with a later group of the same prompt.
GEN = """
local g = redis.call('GET', KEYS[1])
if (not g) or g == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]); return ARGV[2]
end
return g
"""
# KEYS s m c w; ARGV drop: one waiter leaves; the last one drops an unclaimed group
# (ARGV drop = 0 on shutdown: the samples stay for the retries) -> 1 if dropped
LEAVE = """
local n = redis.call('DECR', KEYS[4])
if n > 0 then return 0 end
redis.call('DEL', KEYS[4])
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[3]) == 0 then
  return redis.call('DEL', KEYS[1], KEYS[2]) > 0 and 1 or 0
end
return 0
"""
# KEYS c; ARGV value ttl: extend the claim only while it is still ours
KEEP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

__all__ = ["ADD", "CLAIM", "GEN", "KEEP", "LEAVE"]
