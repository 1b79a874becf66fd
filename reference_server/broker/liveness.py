"""Node liveness on Redis: heartbeats, reaping the state of dead nodes, restoring lost state.

A node that crashes (SIGKILL, a lost machine) cannot clean up after itself: its connections,
room memberships and presence statuses would stay in Redis for ever, as ghost members that
new joiners see and that nobody is told have left. So every broker instance keeps a key
with a time to live and renews it every beat; an instance whose key expired is dead, and
the first live node to notice removes what it registered and tells the rooms (user_leave),
within ``ttl + beat`` of the crash (CLUSTER-006). The unit is the broker *instance*, not the
node id, so a node restarted under the same id never inherits, or keeps, the old state.

The other way round, Redis may lose the state while the nodes live (a restart without
persistence). Each node then finds its own liveness key gone at its next beat and registers
again what it holds locally: its connections, their rooms, their users' statuses
(CLUSTER-007). A node that was reaped while alive but stalled for longer than the time to
live comes back the same way; its members reappear without a user_join (documented).

==================================  ======  ===================================================
key                                 type    contents
==================================  ======  ===================================================
``<ns>:node:<instance>``            string  the node id; expires unless renewed (TTL)
``<ns>:nodes``                      hash    instance -> node id, for every registered instance
``<ns>:node-conns:<instance>``      set     the client ids the instance registered
``<ns>:conn-rooms:<client>``        set     the rooms a client is a member of
==================================  ======  ===================================================
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from reference_server.broker.base import Departure

#: How often a node renews its key, and how long the key lives without renewal. A node is
#: declared dead after NODE_TTL_MS without a beat, and reaped within one more beat.
BEAT_MS = 1000
NODE_TTL_MS = 5000

# KEYS: node key, nodes; ARGV: node id, ttl ms, instance -> 1 renewed, 0 (re)created
RENEW = """
local current = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
if current then return 1 end
return 0
"""

# ARGV: namespace, this instance -> flat {room, user, client, ...} of the members removed
REAP = """
local ns = ARGV[1]
local out = {}
local nodes = redis.call('HGETALL', ns .. ':nodes')
for i = 1, #nodes, 2 do
  local instance = nodes[i]
  if instance ~= ARGV[2] and redis.call('EXISTS', ns .. ':node:' .. instance) == 0 then
    redis.call('HDEL', ns .. ':nodes', instance)
    local conns_key = ns .. ':node-conns:' .. instance
    for _, client in ipairs(redis.call('SMEMBERS', conns_key)) do
      local rooms_key = ns .. ':conn-rooms:' .. client
      for _, room in ipairs(redis.call('SMEMBERS', rooms_key)) do
        local room_key = ns .. ':room:' .. room
        local member = redis.call('HGET', room_key, client)
        if member then
          redis.call('HDEL', room_key, client)
          redis.call('ZREM', ns .. ':room-order:' .. room, client)
          if redis.call('EXISTS', room_key) == 0 then
            redis.call('DEL', ns .. ':room-order:' .. room)
            redis.call('SREM', ns .. ':rooms', room)
          end
          out[#out + 1] = room
          out[#out + 1] = member
          out[#out + 1] = client
        end
      end
      redis.call('DEL', rooms_key)
      local user = redis.call('HGET', ns .. ':conns', client)
      if user then
        redis.call('HDEL', ns .. ':conns', client)
        if redis.call('HINCRBY', ns .. ':conn-users', user, -1) <= 0 then
          redis.call('HDEL', ns .. ':conn-users', user)
          redis.call('HDEL', ns .. ':status', user)
        end
      end
    end
    redis.call('DEL', conns_key)
  end
end
return out
"""


def departures(flat: list[str]) -> tuple[Departure, ...]:
    return tuple(
        Departure(room_id=room, user_id=user, client_id=client)
        for room, user, client in zip(flat[::3], flat[1::3], flat[2::3], strict=True)
    )


@dataclass
class LocalState:
    """What this node registered in Redis, kept to register it again if Redis loses it."""

    connections: dict[str, str] = field(default_factory=dict)  # client id -> user id
    rooms: dict[str, dict[str, None]] = field(default_factory=dict)  # client -> rooms, in order
    statuses: dict[str, str] = field(default_factory=dict)  # user id -> status
    users: Counter[str] = field(default_factory=Counter)  # user id -> open connections here

    def opened(self, client_id: str, user_id: str) -> None:
        previous = self.connections.get(client_id)
        if previous == user_id:
            return
        if previous is not None:
            self.closed(client_id)
        self.connections[client_id] = user_id
        self.users[user_id] += 1

    def closed(self, client_id: str) -> None:
        user = self.connections.pop(client_id, None)
        self.rooms.pop(client_id, None)
        if user is None:
            return
        self.users[user] -= 1
        if self.users[user] <= 0:
            del self.users[user]
            self.statuses.pop(user, None)

    def joined(self, room_id: str, client_id: str) -> None:
        self.rooms.setdefault(client_id, {})[room_id] = None

    def left(self, room_id: str, client_id: str) -> None:
        self.rooms.get(client_id, {}).pop(room_id, None)

    def status_set(self, user_id: str, status: str) -> None:
        if user_id in self.users:
            self.statuses[user_id] = status

    def status_cleared(self, user_id: str) -> None:
        self.statuses.pop(user_id, None)
