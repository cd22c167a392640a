-- One change to a room, numbered, stored and published in one atomic step
-- (examples/broadcast/cluster.rs runs it with EVALSHA).
--
-- KEYS[1] the room's sequence        (string, INCR)
-- KEYS[2] the room's epoch           (string: changes when the sequence restarts)
-- KEYS[3] the room's history         (stream, capped, entry id "SEQ-0")
-- KEYS[4] the room's members         (sorted set: member -> sequence of its join)
-- KEYS[5] the members' names         (hash: member -> name)
-- KEYS[6] the publishers' last calls (hash: instance -> its last publish number)
--
-- ARGV[1]  the calling node instance ("NODE.INCARNATION")
-- ARGV[2]  its publish number: increasing per instance, the same when retried
-- ARGV[3]  what: t (text), b (binary), j (join), l (leave), r (rename), x (reap)
-- ARGV[4]  the member ("INSTANCE/ID"), or "-"
-- ARGV[5]  t, b, r: the body; j, l: the notice's JSON up to the count; j: the name
-- ARGV[6]  j, l: the notice's JSON after the count
-- ARGV[7]  an epoch to start if the sequence starts over
-- ARGV[8]  the history's length (MAXLEN ~)
-- ARGV[9]  the room's channel
-- ARGV[10] the prefix of the nodes' liveness keys (+ INSTANCE)
-- ARGV[11] the time, in milliseconds since the Unix epoch
-- ARGV[12] j: the name
--
-- Returns {1, seq, epoch, names...} when it ran (seq 0: nothing to announce),
-- {0, seq, epoch, names...} for a publish number already seen (a retry of a
-- call that ran; for a join, seq is that join's).
--
-- The liveness keys it reads are not in KEYS: this script is for a single
-- Redis (Redis Cluster would need every key in KEYS and one hash slot).

local function emit(kind, member, body)
  local seq = redis.call('INCR', KEYS[1])
  local epoch = redis.call('GET', KEYS[2])
  if seq == 1 or not epoch then
    -- The sequence starts over: whatever history there was is another epoch's.
    epoch = ARGV[7]
    redis.call('SET', KEYS[2], epoch)
    redis.call('DEL', KEYS[3])
  end
  local envelope = epoch .. ' ' .. seq .. ' ' .. kind .. ' ' .. member .. ' ' .. body
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], seq .. '-0', 'm', envelope)
  redis.call('PUBLISH', ARGV[9], envelope)
  return seq, epoch
end

-- Members of nodes whose liveness key expired: announced as left.
local function reap()
  local members = redis.call('ZRANGE', KEYS[4], 0, -1)
  for _, member in ipairs(members) do
    local instance = string.match(member, '^(.*)/')
    if instance and redis.call('EXISTS', ARGV[10] .. instance) == 0 then
      local name = redis.call('HGET', KEYS[5], member) or 'anonymous'
      redis.call('ZREM', KEYS[4], member)
      redis.call('HDEL', KEYS[5], member)
      local body = '{"type":"leave","name":' .. cjson.encode(name) .. ',"members":'
        .. redis.call('ZCARD', KEYS[4]) .. ',"reason":"node lost","time":' .. ARGV[11] .. '}'
      emit('l', member, body)
    end
  end
end

local function names()
  local members = redis.call('ZRANGE', KEYS[4], 0, -1)
  if #members == 0 then return {} end
  local list = redis.call('HMGET', KEYS[5], unpack(members))
  for i, name in ipairs(list) do
    if not name then list[i] = 'anonymous' end
  end
  return list
end

local what = ARGV[3]
if what == 'x' then
  reap()
  return {1, 0, ''}
end

local last = tonumber(redis.call('HGET', KEYS[6], ARGV[1]) or '0')
if tonumber(ARGV[2]) <= last then
  if what == 'j' then
    local seq = tonumber(redis.call('ZSCORE', KEYS[4], ARGV[4]) or '0')
    local reply = {0, seq, redis.call('GET', KEYS[2]) or ''}
    for _, name in ipairs(names()) do table.insert(reply, name) end
    return reply
  end
  return {0, 0, ''}
end
redis.call('HSET', KEYS[6], ARGV[1], ARGV[2])
-- Instances come and go (a new one per start): forget idle ones after a day.
redis.call('PEXPIRE', KEYS[6], 86400000)

if what == 't' or what == 'b' then
  local seq, epoch = emit(what, ARGV[4], ARGV[5])
  return {1, seq, epoch}
elseif what == 'j' then
  reap()
  redis.call('HSET', KEYS[5], ARGV[4], ARGV[12])
  redis.call('ZADD', KEYS[4], 0, ARGV[4])
  local count = redis.call('ZCARD', KEYS[4])
  local seq, epoch = emit('j', ARGV[4], ARGV[5] .. count .. ARGV[6])
  redis.call('ZADD', KEYS[4], seq, ARGV[4])
  local reply = {1, seq, epoch}
  for _, name in ipairs(names()) do table.insert(reply, name) end
  return reply
elseif what == 'l' then
  if redis.call('ZREM', KEYS[4], ARGV[4]) == 0 then
    return {1, 0, ''} -- already gone (reaped): the others were told then
  end
  redis.call('HDEL', KEYS[5], ARGV[4])
  local count = redis.call('ZCARD', KEYS[4])
  local seq, epoch = emit('l', ARGV[4], ARGV[5] .. count .. ARGV[6])
  return {1, seq, epoch}
elseif what == 'r' then
  if not redis.call('ZSCORE', KEYS[4], ARGV[4]) then
    return {1, 0, ''}
  end
  redis.call('HSET', KEYS[5], ARGV[4], ARGV[12])
  local seq, epoch = emit('r', ARGV[4], ARGV[5])
  return {1, seq, epoch}
end
return redis.error_reply('unknown operation ' .. what)
