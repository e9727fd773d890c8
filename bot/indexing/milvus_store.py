"""Index versions in Milvus (a server, a cluster, or Milvus Lite in a local `.db` file): the only
module that imports pymilvus.

The engine holds what search needs; each reader holds the small tables, as with FAISS:

    bot_meta                       one row, "current": the live version, its revision and manifest
    bot_<version>_p  passages      pid, article, day, start, end, first/last unit, terms (BM25), dense
    bot_<version>_u  sentence units  uid, article, start, end, vector (quotes are chosen by these)
    bot_<version>_a  articles      the article record as JSON, its text split over rows

Keyword search is Milvus's own BM25 over the bot's tokens (`keyword.tokenize`, joined by spaces)
with the `standard` analyzer, which every Milvus build has (Milvus Lite 3.x lacks `english`):
the engine then sees the very terms bm25s sees, and k1/b are set to bm25s's. The engine finds the
candidates (the top dense hits and the top BM25 hits); the bot scores them (cosine of the stored
vectors, BM25 of the stored terms with the version's own statistics) and fuses them as on FAISS,
so no score the fusion uses depends on how a Milvus build scales BM25.

Publishing: a full build writes three new collections, flushes them, checks their row counts,
and only then points `bot_meta` at them (one upsert, atomic); servers poll that row. Where the
engine has aliases, `bot_passages` is also switched to the new passages collection for other
tools; Milvus Lite 2.5 has none (its create_alias is UNIMPLEMENTED). Adding, changing or
deleting articles in a live version deletes and inserts only their rows (filter on `article`)
and bumps the revision: no rebuild.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import IndexMissingError, StoreError
from bot.indexing.keyword import BM25_B, BM25_K1
from bot.indexing.versions import KEEP_REPLACED_SECONDS, KEEP_VERSIONS, version_time

log = logging.getLogger(__name__)

PREFIX = "bot_"
META = "bot_meta"
ALIAS = "bot_passages"
# Searches read "Bounded": a version is flushed and counted before it is published, so only an
# in-place article change can be a few seconds late on a server; "Strong" cost ~300 ms a query
# there. The pointer and the tables a reader loads are read "Strong", once per change.
SEARCH_CONSISTENCY = "Bounded"
LOAD_CONSISTENCY = "Strong"
# On a server the dense index is HNSW; Milvus Lite 2.5 only has FLAT, IVF_FLAT and AUTOINDEX, and
# FLAT is exact, like the FAISS backend below BOT_APPROXIMATE_ABOVE.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
HNSW_EF = 96
INSERT_BATCH = 1000


@dataclass(frozen=True)
class MilvusTarget:
    """Where the engine is: `http://host:19530` (server, cluster, Zilliz Cloud) or a `.db` file."""

    uri: str
    token: str = ""
    db: str = ""

    @property
    def local(self) -> bool:
        return "://" not in self.uri

    def describe(self) -> str:
        return self.uri if self.local else f"{self.uri}{'/' + self.db if self.db else ''}"


_clients: dict[MilvusTarget, Any] = {}
_clients_lock = threading.Lock()


def client(target: MilvusTarget) -> Any:
    """One client per target and process: Milvus Lite runs one engine process per `.db` file,
    locked to the process that started it."""
    with _clients_lock:
        if target in _clients:
            return _clients[target]
        # glog writes to /tmp unless told otherwise; keep its files together, out of the way.
        logs = Path(tempfile.gettempdir()) / "bot-milvus-logs"
        logs.mkdir(exist_ok=True)
        os.environ.setdefault("GLOG_log_dir", str(logs))
        with warnings.catch_warnings():
            # milvus-lite 2.5 imports pkg_resources (hence setuptools<81), which warns on import.
            warnings.simplefilter("ignore", UserWarning)
            from pymilvus import MilvusClient

            # Milvus Lite keeps no MVCC timestamps; pymilvus warns on every scan that it uses its
            # own (set after the import, which configures pymilvus's loggers).
            logging.getLogger("pymilvus.orm.iterator").setLevel(logging.ERROR)

            if target.local:
                Path(target.uri).parent.mkdir(parents=True, exist_ok=True)
                import milvus_lite  # noqa: F401  (imported here, under the filter)
            kwargs: dict[str, Any] = {"uri": str(Path(target.uri).absolute()) if target.local else target.uri}
            if target.token:
                kwargs["token"] = target.token
            if target.db:
                kwargs["db_name"] = target.db
            try:
                made = MilvusClient(**kwargs)
            except Exception as exc:  # pymilvus raises its own and grpc's errors alike
                hint = (
                    " (a Milvus Lite file is opened by one process at a time: is another bot process using it?)"
                    if target.local
                    else ""
                )
                raise StoreError(f"Cannot reach Milvus at {target.describe()}: {reason(exc)}{hint}") from None
        # Milvus Lite (a .db file, or one served on a port) has FLAT, IVF_FLAT and AUTOINDEX only, and no aliases.
        made._bot_lite = target.local or _server_version(made) is None
        _clients[target] = made
        return made


def _server_version(c: Any) -> str | None:
    """The server's version; None from Milvus Lite, which answers GetVersion with UNIMPLEMENTED."""
    quiet = logging.getLogger("pymilvus.decorators")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # pymilvus logs every failed call as an error
    try:
        return str(c.get_server_version())
    except Exception:
        return None
    finally:
        quiet.setLevel(level)


def release(target: MilvusTarget) -> None:
    """Close the client (and stop a Milvus Lite engine this process started)."""
    with _clients_lock:
        made = _clients.pop(target, None)
    if made is not None:
        made.close()
    if target.local:
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(str(Path(target.uri).absolute()))


def reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def collection_names(version: str) -> tuple[str, str, str]:
    base = PREFIX + version.replace("-", "_")
    return base + "_p", base + "_u", base + "_a"


# ---------------------------------------------------------------------------------- the pointer


def _ensure_meta(c: Any) -> None:
    from pymilvus import DataType, MilvusClient

    if c.has_collection(META):
        return
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("key", DataType.VARCHAR, max_length=64, is_primary=True)
    schema.add_field("value", DataType.VARCHAR, max_length=65535)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)  # a collection needs a vector field
    params = c.prepare_index_params()
    params.add_index("v", index_type="FLAT", metric_type="L2")
    c.create_collection(META, schema=schema, index_params=params, consistency_level=LOAD_CONSISTENCY)


def read_pointer(target: MilvusTarget) -> dict[str, Any] | None:
    """The live version's manifest, or None when nothing was published."""
    c = client(target)
    try:
        if not c.has_collection(META):
            return None
        rows = c.query(META, ids=["current"], output_fields=["value"], consistency_level=LOAD_CONSISTENCY)
    except Exception as exc:
        raise StoreError(f"Cannot read the index pointer from Milvus at {target.describe()}: {reason(exc)}") from None
    if not rows:
        return None
    manifest: dict[str, Any] = json.loads(rows[0]["value"])
    return manifest


def _write_pointer(c: Any, manifest: dict[str, Any]) -> None:
    c.upsert(META, [{"key": "current", "value": json.dumps(manifest), "v": [0.0, 0.0]}])
    c.flush(META)


def served_version(manifest: dict[str, Any]) -> str:
    """The version name readers report: the build, then the revision (in-place changes), so
    names compare in publishing order as strings, like FAISS versions."""
    return f"{manifest['version']}+r{int(manifest.get('revision', 0)):06d}"


def current_version(target: MilvusTarget) -> str:
    manifest = read_pointer(target)
    if manifest is None:
        raise IndexMissingError(f"No index in Milvus at {target.describe()}: run `bot index` first.")
    return served_version(manifest)


# ---------------------------------------------------------------------------------- writing


def create_collections(c: Any, version: str, dimension: int) -> tuple[str, str, str]:
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    p_name, u_name, a_name = collection_names(version)
    local = _is_lite(c)
    p = MilvusClient.create_schema(auto_id=False)
    p.add_field("pid", DataType.INT64, is_primary=True)
    for name in ("article", "start", "end", "first", "last"):
        p.add_field(name, DataType.INT64)
    p.add_field("day", DataType.VARCHAR, max_length=10)
    p.add_field("terms", DataType.VARCHAR, max_length=65535, enable_analyzer=True, analyzer_params={"type": "standard"})
    p.add_field("dense", DataType.FLOAT_VECTOR, dim=dimension)
    p.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    p.add_function(
        Function(
            name="bm25", function_type=FunctionType.BM25, input_field_names=["terms"], output_field_names=["sparse"]
        )
    )
    params = c.prepare_index_params()
    if local:
        params.add_index("dense", index_type="FLAT", metric_type="IP")
    else:
        params.add_index(
            "dense", index_type="HNSW", metric_type="IP", params={"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION}
        )
    params.add_index(
        "sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params={"bm25_k1": BM25_K1, "bm25_b": BM25_B}
    )
    c.create_collection(p_name, schema=p, index_params=params, consistency_level=SEARCH_CONSISTENCY)

    u = MilvusClient.create_schema(auto_id=False)
    u.add_field("uid", DataType.INT64, is_primary=True)
    for name in ("article", "start", "end"):
        u.add_field(name, DataType.INT64)
    u.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
    params = c.prepare_index_params()
    params.add_index("vector", index_type="FLAT" if local else "AUTOINDEX", metric_type="IP")
    c.create_collection(u_name, schema=u, index_params=params, consistency_level=SEARCH_CONSISTENCY)

    a = MilvusClient.create_schema(auto_id=False)
    a.add_field("row", DataType.INT64, is_primary=True)
    a.add_field("article", DataType.INT64)
    a.add_field("part", DataType.INT64)
    a.add_field("body", DataType.VARCHAR, max_length=65535)
    a.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    params = c.prepare_index_params()
    params.add_index("v", index_type="FLAT", metric_type="L2")
    c.create_collection(a_name, schema=a, index_params=params, consistency_level=SEARCH_CONSISTENCY)
    return p_name, u_name, a_name


def _is_lite(c: Any) -> bool:
    return bool(getattr(c, "_bot_lite", False))


@dataclass
class Rows:
    """The rows of some articles, ready to insert."""

    passages: list[dict[str, Any]]
    units: list[dict[str, Any]]
    articles: list[dict[str, Any]]


def insert_rows(c: Any, names: tuple[str, str, str], rows: Rows) -> None:
    for name, batch in zip(names, (rows.passages, rows.units, rows.articles), strict=True):
        for i in range(0, len(batch), INSERT_BATCH):
            chunk = batch[i : i + INSERT_BATCH]
            for row in chunk:
                for field in ("dense", "vector"):
                    if field in row and isinstance(row[field], np.ndarray):
                        row[field] = row[field].astype(np.float32).tolist()
            c.insert(name, chunk)
    for name in names:
        c.flush(name)


def _count(c: Any, name: str) -> int:
    rows = c.query(name, filter="", output_fields=["count(*)"], consistency_level=LOAD_CONSISTENCY)
    return int(rows[0]["count(*)"])


def publish_version(
    target: MilvusTarget, version: str, rows: Rows, manifest: dict[str, Any], dimension: int, next_key: int
) -> str:
    """Write a whole version into new collections, check it, then point `bot_meta` at it."""
    c = client(target)
    try:
        _ensure_meta(c)
        names = create_collections(c, version, dimension)
        insert_rows(c, names, rows)
        expected = (len(rows.passages), len(rows.units), len(rows.articles))
        found = tuple(_count(c, name) for name in names)
        if found != expected:
            raise StoreError(f"Milvus holds {found} rows of version {version}, not {expected}: not published.")
        manifest = {**manifest, "version": version, "revision": 0, "next_key": next_key, "collections": list(names)}
        _write_pointer(c, manifest)
        _switch_alias(c, names[0])
        collect_garbage(target)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"Milvus at {target.describe()} failed while writing {version}: {reason(exc)}") from None
    return served_version(manifest)


def _switch_alias(c: Any, collection: str) -> None:
    """Point `bot_passages` at the live passages, for tools that read the engine directly."""
    if _is_lite(c):
        return  # Milvus Lite 2.5 answers UNIMPLEMENTED to every alias call
    try:
        if ALIAS in c.list_aliases(collection).get("aliases", []):
            return
        try:
            c.alter_alias(collection, ALIAS)
        except Exception:
            c.create_alias(collection, ALIAS)
    except Exception as exc:
        log.warning("could not point alias %s at %s: %s", ALIAS, collection, reason(exc))


def update_in_place(
    target: MilvusTarget, manifest: dict[str, Any], removed: list[int], rows: Rows, changes: dict[str, Any]
) -> str:
    """Delete the rows of articles `removed` and insert `rows` in the live version, then bump its
    revision: readers reload their tables at the next poll."""
    c = client(target)
    names = tuple(manifest["collections"])
    try:
        if removed:
            keys = ", ".join(str(k) for k in removed)
            for name in names:
                c.delete(name, filter=f"article in [{keys}]")
        insert_rows(c, (names[0], names[1], names[2]), rows)
        manifest = {**manifest, **changes, "revision": int(manifest.get("revision", 0)) + 1}
        _write_pointer(c, manifest)
    except Exception as exc:
        raise StoreError(f"Milvus at {target.describe()} failed while updating articles: {reason(exc)}") from None
    return served_version(manifest)


def live_articles(target: MilvusTarget, manifest: dict[str, Any]) -> dict[str, tuple[int, str]]:
    """Article id -> (key, record hash) of the live version."""
    c = client(target)
    out: dict[str, tuple[int, str]] = {}
    for row in scan(c, manifest["collections"][2], "part == 0", ["article", "body"]):
        record = json.loads(row["body"])
        out[record["id"]] = (int(row["article"]), str(record["hash"]))
    return out


def scan(c: Any, name: str, where: str, fields: list[str]) -> list[dict[str, Any]]:
    iterator = c.query_iterator(
        name, batch_size=4096, filter=where, output_fields=fields, consistency_level=LOAD_CONSISTENCY
    )
    rows: list[dict[str, Any]] = []
    try:
        while batch := iterator.next():
            rows.extend(batch)
    finally:
        iterator.close()
    return rows


def collect_garbage(
    target: MilvusTarget, keep: int = KEEP_VERSIONS, keep_replaced_seconds: float | None = None
) -> None:
    """Drop old versions' collections: all but the newest `keep`, never the live one, and never one
    replaced less than `keep_replaced_seconds` ago (a server may still be answering from it)."""
    c = client(target)
    manifest = read_pointer(target)
    live = manifest["version"] if manifest else None
    # Collection names spell the version's "-" as "_" (the timestamp and fingerprint have neither).
    versions = sorted(
        {
            name[len(PREFIX) : -2].replace("_", "-", 1)
            for name in c.list_collections()
            if name.startswith(PREFIX) and name != META
        }
    )
    grace = KEEP_REPLACED_SECONDS if keep_replaced_seconds is None else keep_replaced_seconds
    horizon = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=grace)
    for n, old in enumerate(versions[: max(0, len(versions) - keep)]):
        replaced_at = version_time(versions[n + 1])
        if old != live and (replaced_at is None or replaced_at < horizon):
            for collection in collection_names(old):
                if c.has_collection(collection):
                    c.drop_collection(collection)


# ---------------------------------------------------------------------------------- searching
