"""The Lua scripts of the Redis spool, one round trip and atomic each.

Every script names its keys in ``KEYS``, all under one hash tag, so Redis
Cluster runs it on the node that holds them all.
"""

__all__ = ["SCRIPTS"]

_COMMIT = """
local calls, refused, mark = KEYS[1], KEYS[2], KEYS[3]
local group, seq, ttl, cap, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local adds, done, bad = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local at, ids = 9, {}
local fresh = tonumber(seq) > tonumber(redis.call('GET', mark) or '0')
for i = 1, adds do
  if fresh then
    ids[i] = redis.call('XADD', calls, '*', 'endpoint', ARGV[at],
      'email', ARGV[at + 1], 'body', ARGV[at + 2], 'created', ARGV[at + 3])
  end
  at = at + 4
end
if fresh and adds > 0 then redis.call('SET', mark, seq, 'PX', ttl) end
for i = 1, done do
  redis.call('XACK', calls, group, ARGV[at])
  redis.call('XDEL', calls, ARGV[at])
  at = at + 1
end
for i = 1, bad do
  local id, reason = ARGV[at], ARGV[at + 1]
  local found = redis.call('XRANGE', calls, id, id)
  if #found > 0 then
    local fields = found[1][2]
    table.insert(fields, 'reason')
    table.insert(fields, reason)
    table.insert(fields, 'refused')
    table.insert(fields, now)
    redis.call('XADD', refused, 'MAXLEN', '~', cap, '*', unpack(fields))
  end
  redis.call('XACK', calls, group, id)
  redis.call('XDEL', calls, id)
  at = at + 2
end
return {ids, redis.call('XLEN', calls)}
"""

# Only entries this consumer still owns are renewed: one claimed away
# while this process was frozen stays with its new owner.
_RENEW = """
local args, renewed = {KEYS[1], ARGV[1], ARGV[2], 0}, 0
for i = 3, #ARGV do
  local owner = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #owner > 0 and owner[1][2] == ARGV[2] then
    table.insert(args, ARGV[i])
    renewed = renewed + 1
  end
  if #args == 1004 or (i == #ARGV and #args > 4) then
    table.insert(args, 'JUSTID')
    redis.call('XCLAIM', unpack(args))
    args = {KEYS[1], ARGV[1], ARGV[2], 0}
  end
end
return renewed
"""

_RELEASE = """
local held = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', ARGV[3],
  ARGV[2])
for _, entry in ipairs(held) do
  local found = redis.call('XRANGE', KEYS[1], entry[1], entry[1])
  if #found > 0 then
    redis.call('XADD', KEYS[1], '*', unpack(found[1][2]))
  end
  redis.call('XACK', KEYS[1], ARGV[1], entry[1])
  redis.call('XDEL', KEYS[1], entry[1])
end
return #held
"""

_GONE = """
local gone = {}
for _, id in ipairs(ARGV) do
  if #redis.call('XRANGE', KEYS[1], id, id) == 0 then
    table.insert(gone, id)
  end
end
return gone
"""

# The fleet's schedule lives in Redis, on Redis's clock: each send takes
# the next free slot, no earlier than the end of a pause. Microseconds
# since the epoch stay exact in Lua's doubles.
_GATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local slot = now
local paused = redis.call('PTTL', KEYS[1])
if paused > 0 then
  slot = now + paused * 1000
elseif ARGV[2] == '1' then
  return 0
end
local interval = tonumber(ARGV[1])
if interval > 0 then
  local free = tonumber(redis.call('GET', KEYS[2]) or '0')
  if free > slot then slot = free end
  local ttl = math.floor((slot + interval - now) / 1000) + 1000
  redis.call('SET', KEYS[2], string.format('%.0f', slot + interval),
    'PX', ttl)
end
return slot - now
"""

_PAUSE = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
"""

# A consumer is deleted only when it holds nothing, checked in the same
# script: deleting one that holds entries would strand them for good.
_SWEEP = """
local swept = 0
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1],
    ARGV[1])) do
  local info = {}
  for i = 1, #consumer, 2 do info[consumer[i]] = consumer[i + 1] end
  if info['pending'] == 0 and info['idle'] > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    swept = swept + 1
  end
end
return swept
"""


SCRIPTS = {
    "commit": _COMMIT,
    "renew": _RENEW,
    "release": _RELEASE,
    "gone": _GONE,
    "gate": _GATE,
    "pause": _PAUSE,
    "sweep": _SWEEP,
}
"""Each script's source, by the name the spool calls it by."""
