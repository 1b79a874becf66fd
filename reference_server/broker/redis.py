"""The Redis broker: several nodes on one Redis behave as one server.

Fan-out is one Redis stream, ``<ns>:bus``: every publication is one entry (XADD), and every
node reads every entry once, in order (XREAD), and filters it locally
(``ServerCore.deliver``). A node's own publications are delivered by ``publish`` as soon as
Redis accepted them, exactly as MemoryBroker delivers them. A stream rather than pub/sub,
because a reader that lost its connection resumes from the last entry it read: what Redis
accepted while a node was reconnecting still reaches that node's clients (CLUSTER-001),
instead of being accepted and silently lost. Shared state lives under ``<ns>:``; every
broker method is one Lua script or one command, so the atomicity the interface promises
holds across nodes:

====================================  =======  ===============================================
key                                   type     contents
====================================  =======  ===============================================
``<ns>:bus``                          stream   publications, the newest ``BUS_LENGTH`` kept
``<ns>:conns``                        hash     client id -> user id
``<ns>:conn-users``                   hash     user id -> number of open connections
``<ns>:room:<room>``                  hash     client id -> user id; gone when the room empties
``<ns>:room-order:<room>``            zset     client id -> join sequence (member order)
``<ns>:rooms``                        set      ids of the non-empty rooms
``<ns>:join-seq``                     string   the counter behind the join sequence
``<ns>:status``                       hash     user id -> presence status
``<ns>:rate:<user>``                  zset     one unique member per admitted message, by time
``<ns>:data:<collection>:rev``        string   the collection's revision counter
``<ns>:data:<collection>:version``    hash     record id -> version
``<ns>:data:<collection>:body``       hash     record id -> data as JSON
``<ns>:data:<collection>:changed``    zset     record id -> revision of its last change
``<ns>:data:<collection>:created``    zset     record id -> revision of its creation (order)
``<ns>:data:<collection>:deleted``    zset     tombstones: record id -> revision of deletion
``<ns>:stream:<stream>``              stream   the event buffer; entry ids are the event ids
``<ns>:stream-meta:<stream>``         hash     newest id (``ms``, ``seq``), newest ``dropped``
====================================  =======  ===============================================

Node liveness and the reaping of crashed nodes' state use more keys: see
:mod:`reference_server.broker.liveness`.

Failures: :meth:`RedisBroker.connect` raises :class:`BrokerUnavailable` when Redis cannot
be reached. Later, every operation raises it while Redis is away, except
:meth:`RedisBroker.rate_limit_hit`, which the core asks before *every* message (pings
included): it falls back to a window kept by this node alone until Redis answers again.
The bus reader never gives up: it reconnects with bounded exponential backoff, logs the
loss, each failed attempt and the recovery, and resumes after the last entry it read; if
Redis came back empty (a restart without persistence), it reads the new bus from its start.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from reference_server.broker import liveness
from reference_server.broker.base import (
    Broker,
    BrokerUnavailable,
    DeliveryCallback,
    DepartureCallback,
    JoinResult,
    LeaveResult,
    Member,
    Publication,
    RateDecision,
    Record,
    RecordOutcome,
    StreamEvent,
    StreamRead,
    SyncResult,
    event_position,
)
from reference_server.broker.memory import MemoryBroker

log = logging.getLogger("reference_server.broker.redis")

# What an unreachable or silent Redis looks like from redis-py (timeouts included).
OUTAGE_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
# Extra life for a rate window's key beyond the window, so node clocks may differ a little.
RATE_KEY_SLACK_MS = 60_000
READ_TIMEOUT_S = 1.0  # the reader wakes at least this often, to notice close()
READ_BATCH = 500  # bus entries per XREAD
#: Bus entries Redis keeps (approximately): a reader that falls further behind than this
#: loses publications. At 10,000 publications a second that is ten seconds of history.
BUS_LENGTH = 100_000
READER_STOP_TIMEOUT_S = 5.0
NOT_CONNECTED = "RedisBroker is not connected: await connect() (or start()) first"

# --------------------------------------------------------------------------- Lua scripts
_ROOM_MEMBERS = """
local function members(room, order)
  local out = {}
  for _, client in ipairs(redis.call('ZRANGE', order, 0, -1)) do
    out[#out + 1] = client
    out[#out + 1] = redis.call('HGET', room, client)
  end
  return out
end
"""

# Appends ARGV[4] (an encoded publication, or '') to the bus, ARGV[5] entries kept; returns
# the bus position after it: the newest entry.
_ANNOUNCE = """
local function announce(bus)
  if ARGV[4] ~= '' then
    return redis.call('XADD', bus, 'MAXLEN', '~', ARGV[5], '*', 'p', ARGV[4])
  end
  local newest = redis.call('XREVRANGE', bus, '+', '-', 'COUNT', 1)
  if newest[1] then return newest[1][1] end
  return '0-0'
end
"""

# KEYS: room, room-order, rooms, join-seq, conn-rooms, bus
# ARGV: room id, client id, user id, announcement or '', bus length
# -> {already, members, position: the joiner gets only what the bus carries after it}
_JOIN = (
    _ROOM_MEMBERS
    + _ANNOUNCE
    + """
redis.call('SADD', KEYS[5], ARGV[1])
local already = redis.call('HEXISTS', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
if already == 0 then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), ARGV[2])
  redis.call('SADD', KEYS[3], ARGV[1])
else
  ARGV[4] = ''
end
return {already, members(KEYS[1], KEYS[2]), announce(KEYS[6])}
"""
)

# KEYS: room, room-order, rooms, conn-rooms, bus
# ARGV: room id, client id, unused, announcement or '', bus length
_LEAVE = (
    _ROOM_MEMBERS
    + _ANNOUNCE
    + """
redis.call('SREM', KEYS[4], ARGV[1])
local removed = redis.call('HDEL', KEYS[1], ARGV[2])
if removed == 1 then
  redis.call('ZREM', KEYS[2], ARGV[2])
  if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('DEL', KEYS[2])
    redis.call('SREM', KEYS[3], ARGV[1])
  end
else
  ARGV[4] = ''
end
return {removed, members(KEYS[1], KEYS[2]), announce(KEYS[5])}
"""
)

# KEYS: room, room-order
_MEMBERS = _ROOM_MEMBERS + "return members(KEYS[1], KEYS[2])\n"

# KEYS: conns, conn-users, node-conns; ARGV: client id, user id
_CONNECTION_OPENED = """
redis.call('SADD', KEYS[3], ARGV[1])
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old == ARGV[2] then return 0 end
if old and redis.call('HINCRBY', KEYS[2], old, -1) <= 0 then
  redis.call('HDEL', KEYS[2], old)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
return 1
"""

# KEYS: conns, conn-users, node-conns, conn-rooms; ARGV: client id, user id
# -> that user's remaining connections
_CONNECTION_CLOSED = """
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[4])
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  redis.call('HDEL', KEYS[1], ARGV[1])
  if redis.call('HINCRBY', KEYS[2], old, -1) <= 0 then redis.call('HDEL', KEYS[2], old) end
end
return tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
"""

# The seed's sliding window, race-free: trim, count, then admit-and-record or refuse.
# KEYS: rate window; ARGV: now ms, window ms, limit, unique member, key lifetime ms
_RATE_LIMIT = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local retry = window
  if oldest[2] then retry = tonumber(oldest[2]) + window - now end
  return {0, math.max(1, retry)}
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, 0}
"""

# Records. KEYS: rev, version, body, changed, created, deleted (one collection).
# Replies: {status, version, body JSON, revision}.
_RECORD_CREATE = """
local revision = tonumber(redis.call('GET', KEYS[1]) or '0')
local version = redis.call('HGET', KEYS[2], ARGV[1])
if version then
  return {'conflict', tonumber(version), redis.call('HGET', KEYS[3], ARGV[1]), revision}
end
revision = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], 1)
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[4], revision, ARGV[1])
redis.call('ZADD', KEYS[5], revision, ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
return {'ok', 1, ARGV[2], revision}
"""

# The shared compare step of update and delete: ARGV[1] record id, ARGV[3] expected or ''.
_RECORD_CHECK = """
local revision = tonumber(redis.call('GET', KEYS[1]) or '0')
local version = redis.call('HGET', KEYS[2], ARGV[1])
if not version then return {'not_found', 0, '', revision} end
version = tonumber(version)
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= version then
  return {'conflict', version, redis.call('HGET', KEYS[3], ARGV[1]), revision}
end
revision = redis.call('INCR', KEYS[1])
"""

# ARGV: record id, body JSON, expected version or ''
_RECORD_UPDATE = (
    _RECORD_CHECK
    + """
redis.call('HSET', KEYS[2], ARGV[1], version + 1)
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[4], revision, ARGV[1])
return {'ok', version + 1, ARGV[2], revision}
"""
)

# ARGV: record id, unused, expected version or ''
_RECORD_DELETE = (
    _RECORD_CHECK
    + """
local body = redis.call('HGET', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('ZADD', KEYS[6], revision, ARGV[1])
return {'ok', version, body, revision}
"""
)

# ARGV: since revision or '' -> {revision, {id, version, body, ...}, {deleted id, ...}}
_RECORD_SYNC = """
local revision = tonumber(redis.call('GET', KEYS[1]) or '0')
local ids
local deleted = {}
if ARGV[1] == '' then
  ids = redis.call('ZRANGE', KEYS[5], 0, -1)
else
  ids = redis.call('ZRANGEBYSCORE', KEYS[4], '(' .. ARGV[1], '+inf')
  local created = {}
  for _, id in ipairs(ids) do created[id] = tonumber(redis.call('ZSCORE', KEYS[5], id)) end
  table.sort(ids, function(a, b) return created[a] < created[b] end)
  deleted = redis.call('ZRANGEBYSCORE', KEYS[6], '(' .. ARGV[1], '+inf')
end
local records = {}
for _, id in ipairs(ids) do
  records[#records + 1] = id
  records[#records + 1] = redis.call('HGET', KEYS[2], id)
  records[#records + 1] = redis.call('HGET', KEYS[3], id)
end
return {revision, records, deleted}
"""

# Streams. Exact trimming from the head, as MemoryBroker does: drop while the buffer is
# over size or the oldest event is past retention, and remember the newest dropped id.
_STREAM_TRIM = """
local function published(fields)
  for i = 1, #fields, 2 do
    if fields[i] == 'p' then return tonumber(fields[i + 1]) end
  end
  return 0
end

local function trim(stream, meta, size, cutoff)
  local length = redis.call('XLEN', stream)
  while length > 0 do
    local batch = redis.call('XRANGE', stream, '-', '+', 'COUNT', 128)
    local gone = {}
    for _, entry in ipairs(batch) do
      if length > size or published(entry[2]) < cutoff then
        gone[#gone + 1] = entry[1]
        length = length - 1
      else
        break
      end
    end
    if #gone > 0 then
      redis.call('XDEL', stream, unpack(gone))
      redis.call('HSET', meta, 'dropped', gone[#gone])
    end
    if #gone < #batch or #batch == 0 then return end
  end
end
"""

# KEYS: stream, stream-meta; ARGV: now ms, buffer size, retention ms, type, tags, data
# Ids are <ms>-<seq>, strictly increasing even if a node's clock stalls or steps back.
_STREAM_APPEND = (
    _STREAM_TRIM
    + """
local now = tonumber(ARGV[1])
local last = tonumber(redis.call('HGET', KEYS[2], 'ms') or '0')
local seq = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')
if now > last then
  last = now
  seq = 0
else
  seq = seq + 1
end
local id = string.format('%d-%d', last, seq)
redis.call('HSET', KEYS[2], 'ms', string.format('%d', last), 'seq', string.format('%d', seq))
redis.call('XADD', KEYS[1], id, 't', ARGV[4], 'g', ARGV[5], 'd', ARGV[6], 'p', ARGV[1])
trim(KEYS[1], KEYS[2], tonumber(ARGV[2]), now - tonumber(ARGV[3]))
return id
"""
)

# KEYS: stream, stream-meta; ARGV: now ms, retention ms
# -> {newest ms, newest seq, newest dropped id, entries}
_STREAM_READ = (
    _STREAM_TRIM
    + """
trim(KEYS[1], KEYS[2], math.huge, tonumber(ARGV[1]) - tonumber(ARGV[2]))
local meta = redis.call('HMGET', KEYS[2], 'ms', 'seq', 'dropped')
return {meta[1] or '0', meta[2] or '0', meta[3] or '0-0', redis.call('XRANGE', KEYS[1], '-', '+')}
"""
)

_SCRIPTS = {
    "join": _JOIN,
    "leave": _LEAVE,
    "members": _MEMBERS,
    "connection_opened": _CONNECTION_OPENED,
    "connection_closed": _CONNECTION_CLOSED,
    "rate_limit": _RATE_LIMIT,
    "record_create": _RECORD_CREATE,
    "record_update": _RECORD_UPDATE,
    "record_delete": _RECORD_DELETE,
    "record_sync": _RECORD_SYNC,
    "stream_append": _STREAM_APPEND,
    "stream_read": _STREAM_READ,
    "renew": liveness.RENEW,
    "reap": liveness.REAP,
}


# --------------------------------------------------------------------------- wire format
def encode_publication(publication: Publication, instance: str) -> bytes:
    """One bus message; ``instance`` names the sending broker so it can skip its own.

    Sets are sorted so equal publications encode equally.
    """
    recipients = publication.recipients
    return orjson.dumps(
        {
            "topic": publication.topic,
            "message": publication.message,
            "exclude": sorted(publication.exclude),
            "recipients": None if recipients is None else sorted(recipients),
            "origin": publication.origin,
            "instance": instance,
        }
    )


def decode_publication(raw: str | bytes) -> tuple[Publication, str]:
    """The inverse of :func:`encode_publication`; ValueError for anything else on the bus."""
    body = orjson.loads(raw)
    if not isinstance(body, dict):
        raise ValueError("a publication must be a JSON object")
    topic, message = body.get("topic"), body.get("message")
    exclude, recipients = body.get("exclude", []), body.get("recipients")
    origin, instance = body.get("origin", ""), body.get("instance", "")
    if not isinstance(topic, str) or not isinstance(message, dict):
        raise ValueError("a publication needs a string topic and an object message")
    if not _strings(exclude) or not (recipients is None or _strings(recipients)):
        raise ValueError("exclude and recipients must be lists of client ids")
    if not isinstance(origin, str) or not isinstance(instance, str):
        raise ValueError("origin and instance must be strings")
    publication = Publication(
        topic,
        message,
        frozenset(exclude),
        None if recipients is None else frozenset(recipients),
        origin,
    )
    return publication, instance


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def redact(url: str) -> str:
    """The URL for logs and errors: a password never leaves the process."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _published_at(now_ms: int) -> str:
    return datetime.fromtimestamp(now_ms / 1000, UTC).isoformat()


def _stream_event(entry_id: str, fields: Sequence[str]) -> StreamEvent:
    values = dict(zip(fields[::2], fields[1::2], strict=True))
    published_ms = int(values["p"])
    return StreamEvent(
        id=entry_id,
        type=values["t"],
        tags=tuple(orjson.loads(values["g"])),
        data=orjson.loads(values["d"]),
        published_at=_published_at(published_ms),
        published_ms=published_ms,
    )


def _members(flat: Sequence[str]) -> tuple[Member, ...]:
    return tuple(
        Member(user_id=user, client_id=client)
        for client, user in zip(flat[::2], flat[1::2], strict=True)
    )


def _outcome(record_id: str, reply: Sequence[Any]) -> RecordOutcome:
    status, version, body, revision = reply
    if status == "not_found":
        return RecordOutcome("not_found", None, int(revision))
    record = Record(record_id, int(version), orjson.loads(body))
    return RecordOutcome("conflict" if status == "conflict" else "ok", record, int(revision))


class RedisBroker(Broker):
    """Shared state and fan-out on one Redis (redis-py asyncio); one instance per node.

    Nothing touches the network before :meth:`connect` (or :meth:`start`), so the broker may
    be built outside the event loop that will run it.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "rep",
        node_id: str,
        connect_timeout: float = 2.0,
        command_timeout: float = 2.0,
        reconnect_initial: float = 0.1,
        reconnect_max: float = 5.0,
        max_connections: int = 50,
        beat_ms: int = liveness.BEAT_MS,
        node_ttl_ms: int = liveness.NODE_TTL_MS,
    ) -> None:
        if not node_id:
            raise ValueError("node_id must name this node")
        if not namespace:
            raise ValueError("namespace must not be empty")
        self.url = url
        self.namespace = namespace
        self.node_id = node_id
        self.bus_key = f"{namespace}:bus"
        self._bus_position = "0-0"  # the newest bus entry this node has read
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._reconnect_initial = reconnect_initial
        self._reconnect_max = reconnect_max
        self._max_connections = max_connections
        self._callbacks: list[DeliveryCallback] = []
        self._instance = uuid.uuid4().hex  # unique even if two nodes share a node_id
        self._client: Redis | None = None
        self._bus: Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._reader: asyncio.Task[None] | None = None
        self._hits = itertools.count()
        self._local_rate = MemoryBroker()  # the window used while Redis is away
        self._rate_degraded = False
        self._closing = False
        self._beat_ms = beat_ms
        self._node_ttl_ms = node_ttl_ms
        self._local = liveness.LocalState()
        self._departure_callbacks: list[DepartureCallback] = []
        self._keeper: asyncio.Task[None] | None = None
        self._beat_now: asyncio.Event | None = None
        self._registered = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self.connect()

    async def connect(self) -> None:
        """Reach Redis and subscribe to the bus; BrokerUnavailable if Redis does not answer.

        Returns once the subscription is confirmed, so no later publication is missed.
        Calling it again while connected does nothing.
        """
        if self._reader is not None:
            return
        self._closing = False
        # A bounded pool that queues callers under load instead of failing them (the plain
        # pool raises "Too many connections", which would look like an outage).
        pool = BlockingConnectionPool.from_url(
            self.url,
            max_connections=self._max_connections,
            timeout=self._command_timeout,
            decode_responses=True,
            socket_connect_timeout=self._connect_timeout,
            socket_timeout=self._command_timeout,
            # One immediate retry replaces a pooled connection that died with a restart. Never
            # retry a timeout: the command may have run, and PUBLISH or a version bump would
            # then run twice (a duplicate delivery, a skipped version).
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        client = Redis.from_pool(pool)
        bus = Redis.from_url(
            self.url,
            decode_responses=True,
            socket_connect_timeout=self._connect_timeout,
            # An XREAD blocks up to READ_TIMEOUT_S before it answers.
            socket_timeout=self._command_timeout + READ_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),  # the reader's own loop does the reconnecting
            client_name=f"{self.namespace}:bus-reader:{self.node_id}",
        )
        try:
            await client.ping()
            self._bus_position = await self._newest_bus_entry(client)
        except (*OUTAGE_ERRORS, RedisError) as exc:
            await client.aclose()
            await bus.aclose()
            raise BrokerUnavailable(f"cannot reach Redis at {redact(self.url)}: {exc}") from exc
        self._client, self._bus = client, bus
        self._scripts = {name: client.register_script(src) for name, src in _SCRIPTS.items()}
        self._reader = asyncio.create_task(self._read_bus(), name=f"redis-bus-{self.node_id}")
        self._beat_now = asyncio.Event()
        try:
            await self._beat()  # registered before the node serves anyone
        except BrokerUnavailable:
            await self.close()
            raise
        self._keeper = asyncio.create_task(self._keep_alive(), name=f"redis-live-{self.node_id}")
        log.info(
            "node %s connected to Redis at %s (namespace %r)",
            self.node_id,
            redact(self.url),
            self.namespace,
        )

    async def check(self) -> None:
        """One PING: the same round trip a new connection's registration needs."""
        with self._unavailable("health check"):
            await self._redis.ping()

    async def close(self) -> None:
        """Stop the reader, then close both connection pools; safe to call twice."""
        self._callbacks.clear()
        self._departure_callbacks.clear()
        self._closing = True
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            await asyncio.wait({keeper}, timeout=READER_STOP_TIMEOUT_S)
            await self._deregister()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            # redis-py can swallow a cancellation that lands in a blocking read; the
            # closing flag ends the reader's loop within one read timeout regardless.
            await asyncio.wait({reader}, timeout=READER_STOP_TIMEOUT_S)
            if not reader.done():
                log.warning("node %s: the bus reader did not stop in time", self.node_id)
            elif not reader.cancelled() and reader.exception() is not None:
                log.warning("node %s: the bus reader failed", self.node_id, exc_info=True)
        for client in (self._client, self._bus):
            if client is not None:
                await client.aclose()
        self._client = self._bus = None
        self._scripts = {}

    # ------------------------------------------------------------------ fan-out
    def on_publication(self, callback: DeliveryCallback) -> None:
        self._callbacks.append(callback)

    async def publish(self, publication: Publication) -> None:
        """Append to the bus, then deliver here, as MemoryBroker does, before returning.

        Local delivery does not wait for the round trip through the bus: a publication
        Redis accepted reaches this node's clients even while the reader is reconnecting
        (a sender always gets its own copy), and a refused one reaches nobody.
        """
        if not publication.origin:
            publication = dataclasses.replace(publication, origin=self.node_id)
        payload = encode_publication(publication, self._instance)
        with self._unavailable("publish"):
            position = await self._redis.xadd(self.bus_key, {"p": payload}, maxlen=BUS_LENGTH)
        self._deliver(dataclasses.replace(publication, position=str(position)))

    async def _newest_bus_entry(self, client: Redis) -> str:
        newest = await client.xrevrange(self.bus_key, count=1)
        return str(newest[0][0]) if newest else "0-0"

    async def _resume_position(self) -> str:
        """After an outage: go on after the last entry read, unless the bus was recreated."""
        assert self._client is not None
        newest = await self._newest_bus_entry(self._client)
        if (event_position(newest) or (0, 0)) < (event_position(self._bus_position) or (0, 0)):
            log.warning(
                "node %s: the Redis bus restarted empty (Redis lost its data); "
                "reading the new bus from its start",
                self.node_id,
            )
            return "0-0"
        return self._bus_position

    async def _read_bus(self) -> None:
        """Deliver every bus entry in order; on loss, reconnect with bounded backoff."""
        loop = asyncio.get_running_loop()
        delay = self._reconnect_initial
        lost_at: float | None = None
        while not self._closing:
            try:
                if lost_at is not None:
                    self._bus_position = await self._resume_position()
                assert self._bus is not None
                reply: Any = await self._bus.xread(
                    {self.bus_key: self._bus_position},
                    count=READ_BATCH,
                    block=int(READ_TIMEOUT_S * 1000),
                )
                if lost_at is not None:
                    log.info(
                        "node %s: Redis bus at %s is back after %.1f s; "
                        "cross-node delivery resumed",
                        self.node_id,
                        redact(self.url),
                        loop.time() - lost_at,
                    )
                    lost_at, delay = None, self._reconnect_initial
                    self._on_reconnect()
            except Exception as exc:  # nothing may end the reader: back off, reconnect
                if lost_at is None:
                    lost_at = loop.time()
                    what = "lost; cross-node delivery paused"
                else:
                    what = "still unavailable"
                log.warning(
                    "node %s: Redis bus at %s %s (%s); next attempt in %.1f s",
                    self.node_id,
                    redact(self.url),
                    what,
                    exc or type(exc).__name__,
                    delay,
                    exc_info=not isinstance(exc, OUTAGE_ERRORS),  # a traceback if unexpected
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._reconnect_max)
                continue
            for _key, entries in reply or ():
                for entry_id, fields in entries:
                    self._bus_position = str(entry_id)
                    self._dispatch(fields.get("p", ""), self._bus_position)

    def _on_reconnect(self) -> None:
        """The bus is readable again: check at once whether Redis kept this node's state."""
        if self._beat_now is not None:
            self._beat_now.set()

    # ------------------------------------------------------------------ liveness
    def on_departures(self, callback: DepartureCallback) -> None:
        self._departure_callbacks.append(callback)

    def _node_key(self) -> str:
        return self._key("node", self._instance)

    async def _beat(self) -> None:
        """Renew this instance's key; restore what Redis lost; reap dead instances."""
        renewed = await self._run(
            "renew",
            [self._node_key(), self._key("nodes")],
            [self.node_id, self._node_ttl_ms, self._instance],
        )
        if not renewed and self._registered:
            await self._restore()
        self._registered = True
        flat = await self._run("reap", [], [self.namespace, self._instance])
        if flat:
            gone = liveness.departures(flat)
            log.warning(
                "node %s: removed %d room memberships of nodes that stopped without closing",
                self.node_id,
                len(gone),
            )
            for callback in list(self._departure_callbacks):
                try:
                    callback(gone)
                except Exception:
                    log.exception("node %s: telling rooms of departures failed", self.node_id)

    async def _keep_alive(self) -> None:
        assert self._beat_now is not None
        failing = False
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._beat_ms / 1000):
                    await self._beat_now.wait()
            self._beat_now.clear()
            try:
                await self._beat()
            except BrokerUnavailable as exc:
                if not failing:
                    log.warning("node %s: liveness beat failed: %s", self.node_id, exc)
                failing = True
                continue
            except Exception:  # the beat must outlive any one failure
                log.exception("node %s: liveness beat failed", self.node_id)
                continue
            if failing:
                log.info("node %s: liveness beats are back", self.node_id)
            failing = False

    async def _restore(self) -> None:
        """CLUSTER-007: Redis lost this node's registrations (a restart): register again."""
        local = self._local
        for client_id, user_id in list(local.connections.items()):
            await self._run(
                "connection_opened", self._connection_keys(client_id), [client_id, user_id]
            )
        memberships = 0
        for client_id, rooms in list(local.rooms.items()):
            owner = local.connections.get(client_id)
            for room_id in list(rooms):
                if owner is not None:
                    await self._join(room_id, Member(owner, client_id))
                    memberships += 1
        for user_id, status in list(local.statuses.items()):
            with self._unavailable("restore status"):
                await self._redis.hset(self._key("status"), user_id, status)
        log.warning(
            "node %s: Redis had lost this node's state; registered again %d connections, "
            "%d room memberships and %d statuses",
            self.node_id,
            len(local.connections),
            memberships,
            len(local.statuses),
        )

    async def _deregister(self) -> None:
        """A clean stop: nothing of this instance is left for others to reap."""
        if self._client is None:
            return
        with contextlib.suppress(*OUTAGE_ERRORS, RedisError):
            await self._client.delete(self._node_key(), self._key("node-conns", self._instance))
            await self._client.hdel(self._key("nodes"), self._instance)

    def _dispatch(self, raw: str | bytes, position: str = "") -> None:
        try:
            publication, instance = decode_publication(raw)
        except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
            log.warning("node %s: skipped a malformed bus message: %s", self.node_id, exc)
            return
        if instance != self._instance:  # this broker's own were delivered by publish()
            self._deliver(dataclasses.replace(publication, position=position))

    def _deliver(self, publication: Publication) -> None:
        for callback in list(self._callbacks):
            try:
                callback(publication)
            except Exception:  # one failing delivery must not stop the reader
                log.exception("node %s: delivery failed on %s", self.node_id, publication.topic)

    # ------------------------------------------------------------------ plumbing
    @property
    def _redis(self) -> Redis:
        if self._client is None:
            raise RuntimeError(NOT_CONNECTED)
        return self._client

    @contextlib.contextmanager
    def _unavailable(self, operation: str) -> Iterator[None]:
        try:
            yield
        except OUTAGE_ERRORS as exc:
            raise BrokerUnavailable(
                f"Redis at {redact(self.url)} is unavailable ({operation}): "
                f"{exc or type(exc).__name__}"
            ) from exc

    async def _run(self, script: str, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        if script not in self._scripts:
            raise RuntimeError(NOT_CONNECTED)
        with self._unavailable(script):
            return await self._scripts[script](keys=keys, args=args)

    def _key(self, *parts: str) -> str:
        return ":".join((self.namespace, *parts))

    def _room_keys(self, room_id: str) -> list[str]:
        return [self._key("room", room_id), self._key("room-order", room_id), self._key("rooms")]

    def _record_keys(self, collection: str) -> list[str]:
        return [
            self._key("data", collection, suffix)
            for suffix in ("rev", "version", "body", "changed", "created", "deleted")
        ]

    def _stream_keys(self, stream_id: str) -> list[str]:
        return [self._key("stream", stream_id), self._key("stream-meta", stream_id)]

    # ------------------------------------------------------------------ connections
    def _connection_keys(self, client_id: str) -> list[str]:
        return [
            self._key("conns"),
            self._key("conn-users"),
            self._key("node-conns", self._instance),
            self._key("conn-rooms", client_id),
        ]

    async def connection_opened(self, client_id: str, user_id: str) -> None:
        keys = self._connection_keys(client_id)[:3]
        await self._run("connection_opened", keys, [client_id, user_id])
        self._local.opened(client_id, user_id)

    async def connection_closed(self, client_id: str, user_id: str) -> int:
        self._local.closed(client_id)  # even if Redis is away: never restored again
        keys = self._connection_keys(client_id)
        return int(await self._run("connection_closed", keys, [client_id, user_id]))

    async def connection_count(self) -> int:
        with self._unavailable("connection_count"):
            return int(await self._redis.hlen(self._key("conns")))

    # ------------------------------------------------------------------ rooms
    def _announcement(self, announce: Publication | None) -> tuple[Publication | None, str]:
        if announce is None:
            return None, ""
        announce = dataclasses.replace(announce, origin=announce.origin or self.node_id)
        return announce, encode_publication(announce, self._instance).decode()

    def _announced(self, announce: Publication | None, made: bool, position: str) -> None:
        """Deliver an announcement the script appended to the bus, as publish() does."""
        if announce is not None and made:
            self._deliver(dataclasses.replace(announce, position=position))

    async def _join(
        self, room_id: str, member: Member, announce: Publication | None = None
    ) -> JoinResult:
        announce, payload = self._announcement(announce)
        keys = [
            *self._room_keys(room_id),
            self._key("join-seq"),
            self._key("conn-rooms", member.client_id),
            self.bus_key,
        ]
        args: list[str | int] = [room_id, member.client_id, member.user_id, payload, BUS_LENGTH]
        already, flat, position = await self._run("join", keys, args)
        self._announced(announce, not already, str(position))
        return JoinResult(_members(flat), bool(already), str(position))

    async def join_room(
        self, room_id: str, member: Member, announce: Publication | None = None
    ) -> JoinResult:
        result = await self._join(room_id, member, announce)
        self._local.joined(room_id, member.client_id)
        return result

    async def leave_room(
        self, room_id: str, client_id: str, announce: Publication | None = None
    ) -> LeaveResult:
        self._local.left(room_id, client_id)
        announce, payload = self._announcement(announce)
        keys = [*self._room_keys(room_id), self._key("conn-rooms", client_id), self.bus_key]
        args: list[str | int] = [room_id, client_id, "", payload, BUS_LENGTH]
        removed, flat, position = await self._run("leave", keys, args)
        self._announced(announce, bool(removed), str(position))
        return LeaveResult(bool(removed), _members(flat))

    async def room_members(self, room_id: str) -> tuple[Member, ...]:
        return _members(await self._run("members", self._room_keys(room_id)[:2], []))

    async def room_count(self) -> int:
        with self._unavailable("room_count"):
            return int(await self._redis.scard(self._key("rooms")))

    # ------------------------------------------------------------------ presence
    async def set_status(self, user_id: str, status: str) -> None:
        with self._unavailable("set_status"):
            await self._redis.hset(self._key("status"), user_id, status)
        self._local.status_set(user_id, status)

    async def clear_status(self, user_id: str) -> None:
        self._local.status_cleared(user_id)
        with self._unavailable("clear_status"):
            await self._redis.hdel(self._key("status"), user_id)

    async def statuses(self, user_ids: Sequence[str]) -> dict[str, str]:
        if not user_ids:
            return {}
        with self._unavailable("statuses"):
            values = await self._redis.hmget(self._key("status"), list(user_ids))
        # decode_responses=True: every present value is a str.
        return {user: str(value) for user, value in zip(user_ids, values, strict=True) if value}

    # ------------------------------------------------------------------ rate limiting
    async def rate_limit_hit(
        self, user_id: str, now_ms: int, window_ms: int, limit: int
    ) -> RateDecision:
        member = f"{now_ms}:{self.node_id}:{next(self._hits)}"  # one per hit, never reused
        try:
            allowed, retry_after_ms = await self._run(
                "rate_limit",
                [self._key("rate", user_id)],
                [now_ms, window_ms, limit, member, window_ms + RATE_KEY_SLACK_MS],
            )
        except BrokerUnavailable as exc:
            # The core asks before every message, pings included: keep limiting, per node.
            if not self._rate_degraded:
                self._rate_degraded = True
                log.warning(
                    "node %s: rate limits are per node until Redis is back: %s", self.node_id, exc
                )
            return await self._local_rate.rate_limit_hit(user_id, now_ms, window_ms, limit)
        if self._rate_degraded:
            self._rate_degraded = False
            log.info("node %s: rate limits are shared through Redis again", self.node_id)
        return RateDecision(bool(allowed), int(retry_after_ms))

    # ------------------------------------------------------------------ records
    async def record_create(
        self, collection: str, record_id: str, data: dict[str, Any]
    ) -> RecordOutcome:
        reply = await self._run(
            "record_create", self._record_keys(collection), [record_id, orjson.dumps(data).decode()]
        )
        return _outcome(record_id, reply)

    async def record_update(
        self, collection: str, record_id: str, data: dict[str, Any], expected: int | None
    ) -> RecordOutcome:
        args = [record_id, orjson.dumps(data).decode(), "" if expected is None else expected]
        return _outcome(
            record_id, await self._run("record_update", self._record_keys(collection), args)
        )

    async def record_delete(
        self, collection: str, record_id: str, expected: int | None
    ) -> RecordOutcome:
        args = [record_id, "", "" if expected is None else expected]
        return _outcome(
            record_id, await self._run("record_delete", self._record_keys(collection), args)
        )

    async def record_sync(self, collection: str, since_revision: int | None) -> SyncResult:
        since = "" if since_revision is None else since_revision
        revision, flat, deleted = await self._run(
            "record_sync", self._record_keys(collection), [since]
        )
        records = tuple(
            Record(record_id, int(version), orjson.loads(body))
            for record_id, version, body in zip(flat[::3], flat[1::3], flat[2::3], strict=True)
        )
        return SyncResult(int(revision), records, tuple(deleted))

    # ------------------------------------------------------------------ streams
    async def stream_append(
        self,
        stream_id: str,
        event_type: str,
        tags: Sequence[str],
        data: Any,
        now_ms: int,
        buffer_size: int,
        retention_ms: int,
    ) -> StreamEvent:
        args: list[str | int] = [
            now_ms,
            buffer_size,
            retention_ms,
            event_type,
            orjson.dumps(list(tags)).decode(),
            orjson.dumps(data).decode(),
        ]
        event_id = await self._run("stream_append", self._stream_keys(stream_id), args)
        return StreamEvent(
            id=str(event_id),
            type=event_type,
            tags=tuple(tags),
            data=data,
            published_at=_published_at(now_ms),
            published_ms=now_ms,
        )

    async def stream_read(
        self, stream_id: str, after: str | None, now_ms: int, retention_ms: int
    ) -> StreamRead:
        newest_ms, newest_seq, dropped, entries = await self._run(
            "stream_read", self._stream_keys(stream_id), [now_ms, retention_ms]
        )
        events = tuple(_stream_event(entry_id, fields) for entry_id, fields in entries)
        if after is None:
            return StreamRead(events, True)
        position = event_position(after)
        newest = (int(newest_ms), int(newest_seq)) if int(newest_ms) else (0, 0)
        if position is None or position < (event_position(dropped) or (0, 0)) or position > newest:
            return StreamRead((), False)
        return StreamRead(
            tuple(e for e in events if (event_position(e.id) or (0, 0)) > position), True
        )
