"""The job table as hashes in the Redis server that carries the queue (``NNGEO_QUEUE=redis://...``),
so every machine sees the same table. Creating a job and changing its state are Lua scripts, which
Redis runs atomically: that is what makes dedupe and claims race-free across machines.
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from ...settings import get_settings
from .base import (
    ACTIVE_STATES,
    FIELDS,
    FINAL_STATES,
    MAX_LOG_LINES,
    STATES,
    WORKER_FIELDS,
    JobTable,
    Row,
    blank_row,
    check_fields,
    typed_row,
)

if TYPE_CHECKING:
    import redis

CREATE_LUA = """
-- KEYS: pointer key (latest job of this spec+store), job key, index zset, active set
-- ARGV: id, submitted, job key prefix, is_active ('1'|'0'), field/value pairs...
local cur = redis.call('GET', KEYS[1])
local cur_active = false
if cur then
  local st = redis.call('HGET', ARGV[3] .. cur, 'state')
  cur_active = (st == 'queued' or st == 'running')
end
if ARGV[4] == '1' and cur_active then return {cur, 0} end
redis.call('HSET', KEYS[2], unpack(ARGV, 5))
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
if ARGV[4] == '1' then redis.call('SADD', KEYS[4], ARGV[1]) end
if not cur_active then redis.call('SET', KEYS[1], ARGV[1]) end
return {ARGV[1], 1}
"""

TRANSITION_LUA = """
-- KEYS: job key, active set
-- ARGV: id, allowed states csv, required worker ('' = any), count attempt ('1'|'0'),
--       n deletions, deleted fields..., field/value pairs...
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return 0 end
local ok = false
for s in string.gmatch(ARGV[2], '[^,]+') do if s == st then ok = true end end
if not ok then return 0 end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'worker') ~= ARGV[3] then return 0 end
local n = tonumber(ARGV[5])
for i = 6, 5 + n do redis.call('HDEL', KEYS[1], ARGV[i]) end
local first = 6 + n
local new_state = nil
for i = first, #ARGV, 2 do if ARGV[i] == 'state' then new_state = ARGV[i + 1] end end
if #ARGV >= first then redis.call('HSET', KEYS[1], unpack(ARGV, first)) end
if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[1], 'attempts', 1) end
if new_state == 'queued' or new_state == 'running' then redis.call('SADD', KEYS[2], ARGV[1])
elseif new_state then redis.call('SREM', KEYS[2], ARGV[1]) end
return 1
"""

DELETE_FINISHED_LUA = """
-- KEYS: job key, log key, index zset, pointer key (latest job of its spec+store)
-- ARGV: id, cutoff, final states csv
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return 0 end
local final = false
for s in string.gmatch(ARGV[3], '[^,]+') do if s == st then final = true end end
if not final then return 0 end
local t = redis.call('HGET', KEYS[1], 'ended')
if not t or t == '' then t = redis.call('HGET', KEYS[1], 'submitted') end
if not t or tonumber(t) >= tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
return 1
"""
DELETE_BATCH = 500


def text(value: bytes | str) -> str:
    """A Redis reply (bytes, as this client is configured) as text."""
    return value.decode() if isinstance(value, bytes) else value


def glob_escape(value: str) -> str:
    """``value`` with Redis' glob characters escaped, for SCAN MATCH."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in value)


def _decoded(raw: Mapping[Any, Any]) -> dict[str, Any]:
    return {text(k): v for k, v in raw.items()}


class RedisJobTable(JobTable):
    """The job table as Redis hashes, next to the Redis queue (``NNGEO_QUEUE=redis://...``)."""

    def __init__(self, url: str, prefix: str = "nngeo"):
        import redis  # lazy: 0.3 s to import, and only Redis queues need it (`nngeo --help` must not)

        self.url = url
        self.r: redis.Redis = redis.Redis.from_url(url)
        self.p = f"{prefix}:"
        self._create = self.r.register_script(CREATE_LUA)
        self._transition = self.r.register_script(TRANSITION_LUA)
        self._delete_finished = self.r.register_script(DELETE_FINISHED_LUA)

    def __repr__(self) -> str:
        return f"RedisJobTable({self.url!r})"

    def _job(self, job_id: str) -> str:
        return f"{self.p}job:{job_id}"

    def _pointer(self, spec_hash: str, store: str) -> str:
        return f"{self.p}latest:{spec_hash}:{hashlib.sha1(store.encode()).hexdigest()[:12]}"

    @property
    def _index(self) -> str:
        return f"{self.p}jobs"

    @property
    def _active(self) -> str:
        return f"{self.p}active"

    @staticmethod
    def _pairs(fields: Mapping[str, Any]) -> tuple[builtins.list[str], builtins.list[Any]]:
        deleted = [k for k, v in fields.items() if v is None]
        pairs: builtins.list[Any] = []
        for k, v in fields.items():
            if v is not None:
                v = int(v) if isinstance(v, bool) else v
                pairs += [k, repr(v) if isinstance(v, (int, float)) else str(v)]
        return deleted, pairs

    def create(self, row: Row) -> tuple[Row, bool]:
        row = blank_row(**row)
        _, pairs = self._pairs(row)
        active = "1" if row["state"] in ACTIVE_STATES else "0"
        job_id, created = self._create(
            keys=[self._pointer(row["spec_hash"], row["store"]), self._job(row["id"]), self._index, self._active],
            args=[row["id"], repr(float(row["submitted"])), f"{self.p}job:", active, *pairs],
        )
        return self.get_existing(text(job_id)), bool(created)

    def get(self, job_id: str) -> Row | None:
        raw = self.r.hgetall(self._job(job_id))
        return typed_row(_decoded(raw), FIELDS) if raw else None

    def _get_many(self, ids: Iterable[bytes | str]) -> builtins.list[Row]:
        pipe = self.r.pipeline()
        for i in ids:
            pipe.hgetall(self._job(text(i)))
        return [typed_row(_decoded(raw), FIELDS) for raw in pipe.execute() if raw]

    def latest(self, spec_hash: str, store: str) -> Row | None:
        job_id = self.r.get(self._pointer(spec_hash, store))
        return self.get(text(job_id)) if job_id else None

    def transition(
        self,
        job_id: str,
        from_states: Iterable[str],
        fields: Mapping[str, Any],
        *,
        worker: str | None = None,
        count_attempt: bool = False,
    ) -> bool:
        fields = dict(fields)
        check_fields(fields)
        deleted, pairs = self._pairs(fields)
        return bool(
            self._transition(
                keys=[self._job(job_id), self._active],
                args=[
                    job_id,
                    ",".join(from_states),
                    worker or "",
                    "1" if count_attempt else "0",
                    len(deleted),
                    *deleted,
                    *pairs,
                ],
            )
        )

    def update(self, job_id: str, fields: Mapping[str, Any]) -> None:
        fields = dict(fields)
        check_fields(fields)
        if "state" in fields:
            raise ValueError("state changes go through transition()")
        # only for jobs that exist: a late progress write must not resurrect a deleted job
        self.transition(job_id, STATES, fields)

    def list(
        self, states: Iterable[str] | None = None, kind: str | None = None, limit: int | None = 100
    ) -> builtins.list[Row]:
        wanted = set(states or ())
        if wanted and wanted <= set(ACTIVE_STATES):
            rows = sorted(self._get_many(self.r.smembers(self._active)), key=lambda r: -r["submitted"])
            rows = [r for r in rows if r["state"] in wanted and (not kind or r["kind"] == kind)]
            return rows[:limit] if limit else rows
        out: builtins.list[Row] = []
        start, page = 0, 500
        while True:
            # without withscores the reply is the members alone
            ids = cast("list[bytes]", self.r.zrevrange(self._index, start, start + page - 1))
            if not ids:
                return out
            for r in self._get_many(ids):
                if (not wanted or r["state"] in wanted) and (not kind or r["kind"] == kind):
                    out.append(r)
                    if limit and len(out) >= limit:
                        return out
            start += page

    def ids_with_prefix(self, prefix: str, limit: int = 2) -> builtins.list[str]:
        found = []
        for key in self.r.scan_iter(match=f"{self.p}job:{glob_escape(prefix)}*", count=1000):
            found.append(text(key)[len(f"{self.p}job:") :])
            if len(found) >= limit:
                break
        return found

    def append_logs(self, job_id: str, lines: builtins.list[str]) -> None:
        if not lines:
            return
        key = f"{self.p}log:{job_id}"
        pipe = self.r.pipeline()
        pipe.rpush(key, *lines)
        pipe.ltrim(key, -MAX_LOG_LINES, -1)
        pipe.execute()

    def logs(self, job_id: str, start: int = 0) -> builtins.list[str]:
        return [text(x) for x in self.r.lrange(f"{self.p}log:{job_id}", start, -1)]

    def delete_finished(self, before: float) -> int:
        # a job ends after it was submitted, so the index (scored by submission) bounds the
        # candidates; the script re-checks state and age atomically, so a job that changed
        # since it was read is left alone
        # without withscores the reply is the members alone
        found = cast("list[bytes]", self.r.zrangebyscore(self._index, "-inf", f"({float(before)!r}"))
        ids = [text(i) for i in found]
        deleted = 0
        for start in range(0, len(ids), DELETE_BATCH):
            batch = ids[start : start + DELETE_BATCH]
            pipe = self.r.pipeline()
            for job_id in batch:
                pipe.hmget(self._job(job_id), ["spec_hash", "store"])
            keys = pipe.execute()
            pipe = self.r.pipeline()
            for job_id, (spec_hash, store) in zip(batch, keys, strict=True):
                pointer = self._pointer(text(spec_hash or b""), text(store or b""))
                self._delete_finished(
                    keys=[self._job(job_id), f"{self.p}log:{job_id}", self._index, pointer],
                    args=[job_id, repr(float(before)), ",".join(FINAL_STATES)],
                    client=pipe,
                )
            deleted += sum(int(x) for x in pipe.execute())
        return deleted

    def put_worker(self, row: Row) -> None:
        key = f"{self.p}worker:{row['id']}"
        _, pairs = self._pairs({k: row.get(k) for k in WORKER_FIELDS})
        pipe = self.r.pipeline()
        pipe.delete(key)
        pipe.hset(key, mapping=dict(zip(pairs[::2], pairs[1::2], strict=False)))
        # a worker that stops beating disappears by itself
        pipe.expire(key, int(get_settings().worker_stale_s * 2))
        pipe.sadd(f"{self.p}workers", row["id"])
        pipe.execute()

    def remove_worker(self, worker_id: str) -> None:
        self.r.delete(f"{self.p}worker:{worker_id}")
        self.r.srem(f"{self.p}workers", worker_id)

    def workers(self) -> builtins.list[Row]:
        ids = [text(i) for i in self.r.smembers(f"{self.p}workers")]
        pipe = self.r.pipeline()
        for i in ids:
            pipe.hgetall(f"{self.p}worker:{i}")
        out = []
        for wid, raw in zip(ids, pipe.execute(), strict=False):
            if raw:
                out.append(typed_row(_decoded(raw), WORKER_FIELDS))
            else:
                self.r.srem(f"{self.p}workers", wid)  # expired
        return sorted(out, key=lambda w: w["started"] or 0)

    def close(self) -> None:
        self.r.close()
