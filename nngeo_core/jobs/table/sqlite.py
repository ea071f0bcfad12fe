"""The job table in a small SQLite file next to the SQLite queue: WAL mode and a busy timeout, so
the dashboard can poll while workers write. A unique partial index on (spec_hash, store) over the
active states makes the database itself refuse a second active job for one spec.
"""

from __future__ import annotations

import builtins
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ...errors import NNGeoError
from .base import (
    FIELDS,
    FINAL_STATES,
    MAX_LOG_LINES,
    WORKER_FIELDS,
    JobTable,
    Row,
    blank_row,
    check_fields,
    typed_row,
)

R = TypeVar("R")

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
    "create table if not exists job_logs "
    "(job text not null, seq integer primary key autoincrement, line text not null)",
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

    def _create_schema(self) -> None:
        self._conn.execute("begin immediate")
        try:
            for ddl in _SQLITE_DDL:
                self._conn.execute(ddl)
            self._conn.execute("commit")
        except BaseException:
            self._conn.execute("rollback")
            raise

    @staticmethod
    def _retry(fn: Callable[[], R], seconds: float = 30.0) -> R:
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

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> builtins.list[Row]:
        with self._lock:
            cur = self._retry(lambda: self._conn.execute(sql, tuple(params)))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=False)) for r in cur.fetchall()]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def create(self, row: Row) -> tuple[Row, bool]:
        row = blank_row(**row)
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        for _ in range(100):
            try:
                self._exec(f"insert into jobs ({cols}) values ({marks})", row.values())
                return self.get_existing(row["id"]), True
            except sqlite3.IntegrityError:
                existing = self._rows(
                    "select * from jobs where spec_hash=? and store=? and state in ('queued', 'running')",
                    (row["spec_hash"], row["store"]),
                )
                if existing:
                    return typed_row(existing[0], FIELDS), False
                # the active job finished between our insert and select: try again
        raise NNGeoError("could not insert the job (the job table keeps changing under us)")

    def get(self, job_id: str) -> Row | None:
        rows = self._rows("select * from jobs where id=?", (job_id,))
        return typed_row(rows[0], FIELDS) if rows else None

    def latest(self, spec_hash: str, store: str) -> Row | None:
        rows = self._rows(
            "select * from jobs where spec_hash=? and store=? order by submitted desc limit 1", (spec_hash, store)
        )
        return typed_row(rows[0], FIELDS) if rows else None

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
        states = builtins.list(from_states)
        sets = [f"{k}=?" for k in fields] + (["attempts=attempts+1"] if count_attempt else [])
        sql = f"update jobs set {', '.join(sets)} where id=? and state in ({', '.join('?' for _ in states)})" + (
            " and worker=?" if worker is not None else ""
        )
        params = [*fields.values(), job_id, *states] + ([worker] if worker is not None else [])
        return self._exec(sql, params).rowcount == 1

    def update(self, job_id: str, fields: Mapping[str, Any]) -> None:
        fields = dict(fields)
        check_fields(fields)
        if "state" in fields:
            raise ValueError("state changes go through transition()")
        self._exec(f"update jobs set {', '.join(f'{k}=?' for k in fields)} where id=?", [*fields.values(), job_id])

    def list(
        self, states: Iterable[str] | None = None, kind: str | None = None, limit: int | None = 100
    ) -> builtins.list[Row]:
        where: builtins.list[str] = []
        params: builtins.list[Any] = []
        if states:
            wanted = builtins.list(states)
            where.append(f"state in ({', '.join('?' for _ in wanted)})")
            params += wanted
        if kind:
            where.append("kind=?")
            params.append(kind)
        sql = "select * from jobs" + (" where " + " and ".join(where) if where else "") + " order by submitted desc"
        if limit:
            sql += f" limit {int(limit)}"
        return [typed_row(r, FIELDS) for r in self._rows(sql, params)]

    def ids_with_prefix(self, prefix: str, limit: int = 2) -> builtins.list[str]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return [
            r["id"]
            for r in self._rows("select id from jobs where id like ? escape '\\' limit ?", (escaped + "%", limit))
        ]

    def append_logs(self, job_id: str, lines: builtins.list[str]) -> None:
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

    def logs(self, job_id: str, start: int = 0) -> builtins.list[str]:
        rows = self._rows("select line from job_logs where job=? order by seq", (job_id,))
        return [r["line"] for r in rows[start:]]

    def delete_finished(self, before: float) -> int:
        where = f"state in ({', '.join('?' for _ in FINAL_STATES)}) and coalesce(ended, submitted) < ?"
        params = (*FINAL_STATES, float(before))

        def delete() -> int:
            # one transaction: the logs go with exactly the jobs that go
            self._conn.execute("begin immediate")  # outside the try: a failed begin has nothing to roll back
            try:
                self._conn.execute(f"delete from job_logs where job in (select id from jobs where {where})", params)
                n = self._conn.execute(f"delete from jobs where {where}", params).rowcount
                self._conn.execute("commit")
                return n
            except BaseException:
                self._conn.execute("rollback")
                raise

        with self._lock:
            return self._retry(delete)

    def put_worker(self, row: Row) -> None:
        row = {k: row.get(k) for k in WORKER_FIELDS}
        cols = ", ".join(row)
        self._exec(f"insert or replace into workers ({cols}) values ({', '.join('?' for _ in row)})", row.values())

    def remove_worker(self, worker_id: str) -> None:
        self._exec("delete from workers where id=?", (worker_id,))

    def workers(self) -> builtins.list[Row]:
        return [typed_row(r, WORKER_FIELDS) for r in self._rows("select * from workers order by started")]
