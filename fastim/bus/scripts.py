"""The presence registry's Lua scripts (keys in fastim/bus/envelope.py).

Each runs atomically inside Redis, so two nodes changing one user's presence at once
(a phone leaving node A while the laptop joins node B) never both decide "first device"
or "last device". Times come from Redis' own clock (``TIME``), so the nodes' clocks may
differ. A node is alive while its score in ``<prefix>:nodes`` (the ms time its last
heartbeat runs out) is in the future; a user is online while one of the nodes in
``<prefix>:on:<user>`` is alive. Entries of a node that died stay until a live node reaps
them, but they stop counting at once when its heartbeat lapses.

Every script takes the key prefix as ARGV[1]. Keys are built inside the scripts because
the users a node held are only known there; that is fine on one Redis (and its
replicas), and is what would change for Redis Cluster (docs/scaling.md).
"""

from __future__ import annotations

_COMMON = """
local p = ARGV[1]
local nodes = p .. ':nodes'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function alive(node)
  local score = redis.call('ZSCORE', nodes, node)
  return score and tonumber(score) > now
end
local function online(user)
  for _, node in ipairs(redis.call('SMEMBERS', p .. ':on:' .. user)) do
    if alive(node) then return true end
  end
  return false
end
"""

#: ARGV: prefix, node, user, payload, friend ids... The user's first device on `node`:
#: register it; if no other live node held the user (offline everywhere until now),
#: publish `payload` (the online presence) to the online friends. Publishing here, in
#: the same atomic step, orders it with every other presence change of the user.
#: Returns {first, online friends...}.
ARRIVE = _COMMON + """
local node, user, payload = ARGV[2], ARGV[3], ARGV[4]
redis.call('SADD', p .. ':node:' .. node, user)
redis.call('SADD', p .. ':on:' .. user, node)
local first = 1
for _, other in ipairs(redis.call('SMEMBERS', p .. ':on:' .. user)) do
  if other ~= node and alive(other) then first = 0 end
end
local result = {first}
for i = 5, #ARGV do
  if online(ARGV[i]) then
    table.insert(result, ARGV[i])
    if first == 1 then redis.call('PUBLISH', p .. ':u:' .. ARGV[i], payload) end
  end
end
return result
"""

#: ARGV: prefix, node, user, payload, friend ids... The user's last device on `node` is
#: gone: unregister it; if that took the user offline everywhere, publish `payload` (the
#: offline presence) to the online friends. Nothing is published when `node` held no
#: registration (a reaper removed it and announced it already). Returns {published}.
DEPART = _COMMON + """
local node, user, payload = ARGV[2], ARGV[3], ARGV[4]
redis.call('SREM', p .. ':node:' .. node, user)
if redis.call('SREM', p .. ':on:' .. user, node) == 0 or online(user) then return {0} end
local published = 0
for i = 5, #ARGV do
  if online(ARGV[i]) then
    redis.call('PUBLISH', p .. ':u:' .. ARGV[i], payload)
    published = published + 1
  end
end
return {published}
"""

#: ARGV: prefix, user ids... Returns those online on some live node.
ONLINE = _COMMON + """
local result = {}
for i = 2, #ARGV do
  if online(ARGV[i]) then table.insert(result, ARGV[i]) end
end
return result
"""

#: ARGV: prefix, node, ttl in ms. Renews the node's lease. Returns {added, expired...}:
#: added is 1 when the node was not registered (first beat, or reaped as dead meanwhile),
#: then the ids of the nodes whose lease has run out.
HEARTBEAT = _COMMON + """
local node, ttl = ARGV[2], tonumber(ARGV[3])
local added = redis.call('ZADD', nodes, now + ttl, node)
local result = {added}
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', nodes, '-inf', now)) do
  table.insert(result, dead)
end
return result
"""

#: ARGV: prefix, node, force, origin. Removes a node and its users' entries: a dead node
#: (its lease ran out; force 0, and then only if it is still expired, so that exactly one
#: reaper does the work and a node that came back is left alone), or this node itself
#: after it lost Redis (force 1). The users it leaves offline everywhere are announced on
#: the control channel (as from `origin`) in the same atomic step. Returns {reaped,
#: gone users...}.
REAP = _COMMON + """
local node, force, origin = ARGV[2], ARGV[3] == '1', ARGV[4]
local score = redis.call('ZSCORE', nodes, node)
if not force and (not score or tonumber(score) > now) then return {0} end
redis.call('ZREM', nodes, node)
local key = p .. ':node:' .. node
local gone = {}
for _, user in ipairs(redis.call('SMEMBERS', key)) do
  redis.call('SREM', p .. ':on:' .. user, node)
  if not online(user) then table.insert(gone, tonumber(user)) end
end
redis.call('DEL', key)
if #gone > 0 then
  local envelope = '{"o":' .. cjson.encode(origin) .. '}\\n' ..
                   cjson.encode({t = 'gone', users = gone})
  redis.call('PUBLISH', p .. ':ctl', envelope)
end
local result = {1}
for _, user in ipairs(gone) do table.insert(result, user) end
return result
"""

ALL = {"arrive": ARRIVE, "depart": DEPART, "online": ONLINE, "heartbeat": HEARTBEAT,
       "reap": REAP}
