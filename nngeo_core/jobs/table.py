"""The job table: one row per job (state, progress, phase, metrics, times, worker, error, result),
per-job log lines and live worker heartbeats, shared by submitters, workers and the dashboard.

Two implementations with one interface: ``SqliteJobTable`` (a small SQLite file next to the
SQLite queue, WAL mode and a busy timeout, so the dashboard can poll while workers write) and
``RedisJobTable`` (hashes in the Redis server that carries the queue, so every machine sees the
same table). Every state change is a conditional update ("set running WHERE state='queued'"),
so two workers never claim the same job and a late writer never overwrites a newer state.

States: queued -> running -> done | failed | cancelled; queued -> cancelled; running -> queued
(re-queued after its worker stopped or died, when that is enabled).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import NNGeoError

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
ACTIVE_STATES = (QUEUED, RUNNING)
FINAL_STATES = (DONE, FAILED, CANCELLED)
STATES = ACTIVE_STATES + FINAL_STATES

# column -> python type; every row dict has exactly these keys (None where unset)
FIELDS: dict[str, type] = {
    "id": str,
    "kind": str,
    "spec_hash": str,
    "spec": str,
    "store": str,
    "label": str,
    "state": str,
    "progress": float,
    "phase": str,
    "metrics": str,
    "submitted": float,
    "started": float,
    "ended": float,
    "heartbeat": float,
    "device": str,
    "worker": str,
    "host": str,
    "pid": int,
    "error": str,
    "result": str,
    "cached": int,
    "cancel_requested": int,
    "attempts": int,
}
WORKER_FIELDS: dict[str, type] = {
    "id": str,
    "host": str,
    "pid": int,
    "device": str,
    "started": float,
    "heartbeat": float,
    "state": str,
    "job": str,
    "queue": str,
    "version": str,
}
MAX_LOG_LINES = 5000  # per job; older lines are dropped first


def blank_row(**values: Any) -> dict:
    row = {k: None for k in FIELDS}
    row.update(progress=0.0, phase="", metrics="{}", cached=0, cancel_requested=0, attempts=0)
    row.update(values)
    unknown = set(row) - set(FIELDS)
    if unknown:
        raise KeyError(f"unknown job fields: {sorted(unknown)}")
    return row


def _typed(raw: Mapping[str, Any], fields: Mapping[str, type]) -> dict:
    out = {}
    for k, t in fields.items():
        v = raw.get(k)
        if isinstance(v, bytes):
            v = v.decode()
        out[k] = None if v is None or v == "" and t is not str else t(v)
    return out


class JobTable(ABC):
    """Shared job state. Every method is safe to call from several threads and processes."""

    @abstractmethod
    def create(self, row: dict) -> tuple[dict, bool]:
        """Insert a job. A queued/running job with the same (spec_hash, store) wins: it is
        returned instead with ``created=False`` (the one atomic dedupe point)."""

    @abstractmethod
    def get(self, job_id: str) -> dict | None: ...

    @abstractmethod
    def latest(self, spec_hash: str, store: str) -> dict | None:
        """The most recent job for this spec and store, if any."""

    @abstractmethod
    def transition(
        self,
        job_id: str,
        from_states: Iterable[str],
        fields: Mapping[str, Any],
        *,
        worker: str | None = None,
        count_attempt: bool = False,
    ) -> bool:
        """Set ``fields`` only if the job's state is one of ``from_states`` (and its worker is
        ``worker`` when given); returns whether it applied. ``count_attempt`` adds 1 to attempts."""

    @abstractmethod
    def update(self, job_id: str, fields: Mapping[str, Any]) -> None:
        """Unconditional update of non-state fields (progress, phase, metrics, heartbeat)."""

    @abstractmethod
    def list(self, states: Iterable[str] | None = None, kind: str | None = None, limit: int | None = 100) -> list[dict]:
        """Jobs, newest first."""

    @abstractmethod
    def ids_with_prefix(self, prefix: str, limit: int = 2) -> list[str]: ...

    @abstractmethod
    def append_logs(self, job_id: str, lines: list[str]) -> None: ...

    @abstractmethod
    def logs(self, job_id: str, start: int = 0) -> list[str]: ...

    @abstractmethod
    def put_worker(self, row: dict) -> None: ...

    @abstractmethod
    def remove_worker(self, worker_id: str) -> None: ...

    @abstractmethod
    def workers(self) -> list[dict]: ...

    def close(self) -> None:
        pass

    # -- shared helpers ------------------------------------------------------------------------
    def resolve(self, job_id: str) -> str:
        """Full job id for an id or unique prefix."""
        job_id = str(job_id).strip()
        if not job_id:
            raise NNGeoError("empty job id")
        if self.get(job_id) is not None:
            return job_id
        found = self.ids_with_prefix(job_id)
        if not found:
            raise NNGeoError(f"no job {job_id!r} in the job table (see `nngeo jobs list`)")
        if len(found) > 1:
            raise NNGeoError(f"{job_id!r} matches several jobs; give more characters")
        return found[0]

    def request_cancel(self, job_id: str) -> bool:
        """Raise the cancel flag; a queued job becomes cancelled at once, a running one stops at
        its next progress check. Returns False when the job had already finished."""
        self.update(job_id, {"cancel_requested": 1})
        # flag first, then the state: a worker claiming in between still sees the flag
        if self.transition(job_id, [QUEUED], {"state": CANCELLED, "ended": time.time(), "phase": "cancelled"}):
            return True
        row = self.get(job_id)
        return row is not None and row["state"] == RUNNING


# -- SQLite ------------------------------------------------------------------------------------
_SQLITE_DDL = [
    """create table if not exists jobs (
        id text primary key, kind text not null, spec_hash text not null, spec text not null,
        store text not null, label text, state text not null, progress real not null default 0,
        phase text not null default '', metrics text not null default '{}', submitted real not null,
        started real, ended real, heartbeat real, device text, worker text, host text, pid integer,
        error text, result text, cached integer not null default 0,
        cancel_requested integer not null default 0, attempts integer not null default 0)""",
    # at most one queued/running job per spec and store: the database enforces the dedupe
    "create unique index if not exists jobs_active on jobs(spec_hash, store) where state in ('queued', 'running')",
    "create index if not exists jobs_hash on jobs(spec_hash, store, submitted)",
    "create index if not exists jobs_submitted on jobs(submitted)",
    "create index if not exists jobs_state on jobs(state)",
    "create table if not exists job_logs (job text not null, seq integer primary key autoincrement, line text not null)",
    "create index if not exists job_logs_job on job_logs(job, seq)",
    """create table if not exists workers (id text primary key, host text, pid integer, device text,
        started real, heartbeat real, state text, job text, queue text, version text)""",
]


class SqliteJobTable(JobTable):
    """The job table in a SQLite file (``:memory:`` for the in-process backend)."""

    def __init__(self, path: str | Path, timeout: float = 30.0):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, timeout=timeout, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._retry(lambda: self._conn.execute("pragma journal_mode=wal"))
            self._conn.execute(f"pragma busy_timeout={int(timeout * 1000)}")
            self._conn.execute("pragma synchronous=normal")
            self._retry(self._create_schema)

    def __repr__(self) -> str:
        return f"SqliteJobTable({self.path!r})"

    def _create_schema(self):
        self._conn.execute("begin immediate")
        try:
            for ddl in _SQLITE_DDL:
                self._conn.execute(ddl)
            self._conn.execute("commit")
        except BaseException:
            self._conn.execute("rollback")
            raise

    @staticmethod
    def _retry(fn, seconds: float = 30.0):
        # switching to WAL or creating tables can meet 'database is locked' despite the busy timeout
        deadline = time.monotonic() + seconds
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _exec(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._retry(lambda: self._conn.execute(sql, tuple(params)))

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict]:
        with self._lock:
            cur = self._retry(lambda: self._conn.execute(sql, tuple(params)))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=False)) for r in cur.fetchall()]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def create(self, row: dict) -> tuple[dict, bool]:
        row = blank_row(**row)
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        for _ in range(100):
            try:
                self._exec(f"insert into jobs ({cols}) values ({marks})", row.values())
                return self.get(row["id"]), True
            except sqlite3.IntegrityError:
                existing = self._rows(
                    "select * from jobs where spec_hash=? and store=? and state in ('queued', 'running')",
                    (row["spec_hash"], row["store"]),
                )
                if existing:
                    return _typed(existing[0], FIELDS), False
                # the active job finished between our insert and select: try again
        raise NNGeoError("could not insert the job (the job table keeps changing under us)")

    def get(self, job_id: str) -> dict | None:
        rows = self._rows("select * from jobs where id=?", (job_id,))
        return _typed(rows[0], FIELDS) if rows else None

    def latest(self, spec_hash: str, store: str) -> dict | None:
        rows = self._rows(
            "select * from jobs where spec_hash=? and store=? order by submitted desc limit 1", (spec_hash, store)
        )
        return _typed(rows[0], FIELDS) if rows else None

    def transition(self, job_id, from_states, fields, *, worker=None, count_attempt=False) -> bool:
        fields = dict(fields)
        _check_fields(fields)
        states = list(from_states)
        sets = [f"{k}=?" for k in fields] + (["attempts=attempts+1"] if count_attempt else [])
        sql = f"update jobs set {', '.join(sets)} where id=? and state in ({', '.join('?' for _ in states)})" + (
            " and worker=?" if worker is not None else ""
        )
        params = [*fields.values(), job_id, *states] + ([worker] if worker is not None else [])
        return self._exec(sql, params).rowcount == 1

    def update(self, job_id, fields) -> None:
        fields = dict(fields)
        _check_fields(fields)
        if "state" in fields:
            raise ValueError("state changes go through transition()")
        self._exec(f"update jobs set {', '.join(f'{k}=?' for k in fields)} where id=?", [*fields.values(), job_id])

    def list(self, states=None, kind=None, limit=100) -> list[dict]:
        where, params = [], []
        if states:
            states = list(states)
            where.append(f"state in ({', '.join('?' for _ in states)})")
            params += states
        if kind:
            where.append("kind=?")
            params.append(kind)
        sql = "select * from jobs" + (" where " + " and ".join(where) if where else "") + " order by submitted desc"
        if limit:
            sql += f" limit {int(limit)}"
        return [_typed(r, FIELDS) for r in self._rows(sql, params)]

    def ids_with_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return [
            r["id"]
            for r in self._rows("select id from jobs where id like ? escape '\\' limit ?", (escaped + "%", limit))
        ]

    def append_logs(self, job_id: str, lines: list[str]) -> None:
        if not lines:
            return
        with self._lock:
            self._retry(
                lambda: self._conn.executemany(
                    "insert into job_logs (job, line) values (?, ?)", [(job_id, line) for line in lines]
                )
            )
            n = self._conn.execute("select count(*) from job_logs where job=?", (job_id,)).fetchone()[0]
            if n > MAX_LOG_LINES:
                self._retry(
                    lambda: self._conn.execute(
                        "delete from job_logs where job=? and seq in (select seq from job_logs where job=? "
                        "order by seq limit ?)",
                        (job_id, job_id, n - MAX_LOG_LINES),
                    )
                )

    def logs(self, job_id: str, start: int = 0) -> list[str]:
        rows = self._rows("select line from job_logs where job=? order by seq", (job_id,))
        return [r["line"] for r in rows[start:]]

    def put_worker(self, row: dict) -> None:
        row = {k: row.get(k) for k in WORKER_FIELDS}
        cols = ", ".join(row)
        self._exec(f"insert or replace into workers ({cols}) values ({', '.join('?' for _ in row)})", row.values())

    def remove_worker(self, worker_id: str) -> None:
        self._exec("delete from workers where id=?", (worker_id,))

    def workers(self) -> list[dict]:
        return [_typed(r, WORKER_FIELDS) for r in self._rows("select * from workers order by started")]


def _check_fields(fields: Mapping[str, Any]) -> None:
    unknown = set(fields) - set(FIELDS)
    if unknown or "id" in fields:
        raise KeyError(f"cannot set job fields {sorted(unknown | ({'id'} & set(fields)))}")
    if "state" in fields and fields["state"] not in STATES:
        raise ValueError(f"unknown job state {fields['state']!r}")


# -- Redis -------------------------------------------------------------------------------------
# Lua scripts run atomically on the server: that is what makes dedupe and claims race-free
# across machines.
_CREATE_LUA = """
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

_TRANSITION_LUA = """
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


class RedisJobTable(JobTable):
    """The job table as Redis hashes, next to the Redis queue (``NNGEO_QUEUE=redis://...``)."""

    def __init__(self, url: str, prefix: str = "nngeo"):
        import redis

        self.url = url
        self.r = redis.Redis.from_url(url)
        self.p = f"{prefix}:"
        self._create = self.r.register_script(_CREATE_LUA)
        self._transition = self.r.register_script(_TRANSITION_LUA)

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
    def _pairs(fields: Mapping[str, Any]) -> tuple[list[str], list[Any]]:
        deleted = [k for k, v in fields.items() if v is None]
        pairs: list[Any] = []
        for k, v in fields.items():
            if v is not None:
                v = int(v) if isinstance(v, bool) else v
                pairs += [k, repr(v) if isinstance(v, (int, float)) else str(v)]
        return deleted, pairs

    def create(self, row: dict) -> tuple[dict, bool]:
        row = blank_row(**row)
        _, pairs = self._pairs(row)
        active = "1" if row["state"] in ACTIVE_STATES else "0"
        job_id, created = self._create(
            keys=[self._pointer(row["spec_hash"], row["store"]), self._job(row["id"]), self._index, self._active],
            args=[row["id"], repr(float(row["submitted"])), f"{self.p}job:", active, *pairs],
        )
        job_id = job_id.decode() if isinstance(job_id, bytes) else job_id
        return self.get(job_id), bool(created)

    def get(self, job_id: str) -> dict | None:
        raw = self.r.hgetall(self._job(job_id))
        return _typed({k.decode(): v for k, v in raw.items()}, FIELDS) if raw else None

    def _get_many(self, ids: list) -> list[dict]:
        pipe = self.r.pipeline()
        for i in ids:
            pipe.hgetall(self._job(i.decode() if isinstance(i, bytes) else i))
        return [_typed({k.decode(): v for k, v in raw.items()}, FIELDS) for raw in pipe.execute() if raw]

    def latest(self, spec_hash: str, store: str) -> dict | None:
        job_id = self.r.get(self._pointer(spec_hash, store))
        return self.get(job_id.decode()) if job_id else None

    def transition(self, job_id, from_states, fields, *, worker=None, count_attempt=False) -> bool:
        fields = dict(fields)
        _check_fields(fields)
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

    def update(self, job_id, fields) -> None:
        fields = dict(fields)
        _check_fields(fields)
        if "state" in fields:
            raise ValueError("state changes go through transition()")
        # only for jobs that exist: a late progress write must not resurrect a deleted job
        self.transition(job_id, STATES, fields)

    def list(self, states=None, kind=None, limit=100) -> list[dict]:
        states = set(states or ())
        if states and states <= set(ACTIVE_STATES):
            rows = sorted(self._get_many(list(self.r.smembers(self._active))), key=lambda r: -r["submitted"])
            rows = [r for r in rows if r["state"] in states and (not kind or r["kind"] == kind)]
            return rows[:limit] if limit else rows
        out, start, page = [], 0, 500
        while True:
            ids = self.r.zrevrange(self._index, start, start + page - 1)
            if not ids:
                return out
            for r in self._get_many(ids):
                if (not states or r["state"] in states) and (not kind or r["kind"] == kind):
                    out.append(r)
                    if limit and len(out) >= limit:
                        return out
            start += page

    def ids_with_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        found = []
        for key in self.r.scan_iter(match=f"{self.p}job:{_redis_glob_escape(prefix)}*", count=1000):
            found.append(key.decode()[len(f"{self.p}job:") :])
            if len(found) >= limit:
                break
        return found

    def append_logs(self, job_id: str, lines: list[str]) -> None:
        if not lines:
            return
        key = f"{self.p}log:{job_id}"
        pipe = self.r.pipeline()
        pipe.rpush(key, *lines)
        pipe.ltrim(key, -MAX_LOG_LINES, -1)
        pipe.execute()

    def logs(self, job_id: str, start: int = 0) -> list[str]:
        return [x.decode() for x in self.r.lrange(f"{self.p}log:{job_id}", start, -1)]

    def put_worker(self, row: dict) -> None:
        from .worker import STALE_SECONDS

        key = f"{self.p}worker:{row['id']}"
        _, pairs = self._pairs({k: row.get(k) for k in WORKER_FIELDS})
        pipe = self.r.pipeline()
        pipe.delete(key)
        pipe.hset(key, mapping=dict(zip(pairs[::2], pairs[1::2], strict=False)))
        pipe.expire(key, int(STALE_SECONDS * 2))  # a worker that stops beating disappears by itself
        pipe.sadd(f"{self.p}workers", row["id"])
        pipe.execute()

    def remove_worker(self, worker_id: str) -> None:
        self.r.delete(f"{self.p}worker:{worker_id}")
        self.r.srem(f"{self.p}workers", worker_id)

    def workers(self) -> list[dict]:
        ids = [i.decode() for i in self.r.smembers(f"{self.p}workers")]
        pipe = self.r.pipeline()
        for i in ids:
            pipe.hgetall(f"{self.p}worker:{i}")
        out = []
        for wid, raw in zip(ids, pipe.execute(), strict=False):
            if raw:
                out.append(_typed({k.decode(): v for k, v in raw.items()}, WORKER_FIELDS))
            else:
                self.r.srem(f"{self.p}workers", wid)  # expired
        return sorted(out, key=lambda w: w["started"] or 0)

    def close(self) -> None:
        self.r.close()


def _redis_glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def job_table_for(queue: str) -> JobTable:
    """The job table that goes with a queue setting (``NNGEO_QUEUE``, see ``nngeo_core.settings``)."""
    if is_redis_url(queue):
        return RedisJobTable(queue)
    return SqliteJobTable(sqlite_jobs_path(sqlite_queue_path(queue)))


def is_redis_url(queue: str) -> bool:
    return queue.startswith(("redis://", "rediss://", "unix://"))


def sqlite_queue_path(queue: str) -> Path:
    """'sqlite:///abs/queue.db' or a bare path -> the path (as ``Settings.queue_sqlite_path``)."""
    return Path(queue[len("sqlite://") :] if queue.startswith("sqlite://") else queue).expanduser()


def sqlite_jobs_path(queue_path: Path) -> Path:
    """``queue.db`` -> ``queue.jobs.db`` in the same folder."""
    queue_path = Path(queue_path)
    return queue_path.with_name(queue_path.stem + ".jobs" + (queue_path.suffix or ".db"))


def metrics_json(metrics: Mapping[str, Any]) -> str:
    return json.dumps(dict(metrics), sort_keys=True, default=_plain_number)


def _plain_number(o):
    if hasattr(o, "item"):
        return o.item()
    return str(o)
