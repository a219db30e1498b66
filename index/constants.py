"""Literals of the catalog (where it lives, statuses, batch sizes) and of the embedded store's files
(its writer lock, the free space it needs, the generations readers read)."""
from __future__ import annotations

# Where the catalog lives is a setting: toolkit.settings (DB_ENV, DEFAULT_DB).
SQLITE_PREFIX = "sqlite:///"
SQLITE_HEADER = b"SQLite format 3\x00"  # the first bytes of every non-empty SQLite database file
DB_ACCEPTED = ("an SQLite file path (created when missing) or an SQLAlchemy URL such as "
               "sqlite:///var/catalog.db or postgresql+psycopg://USER:PASSWORD@HOST/DB")
# A `--db` value without `://` is a file path, unless it starts like a URL of these databases
# (`postgres//host/db`, `postgresql:/db`): a typo that would otherwise create a new SQLite file.
DB_URL_SCHEMES: tuple[str, ...] = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "mssql", "oracle")
# How to install a database driver that pyproject lists as an optional dependency, by module name.
DB_DRIVER_INSTALL: dict[str, str] = {"psycopg": "pip install 'tree-of-life-search[postgres]'"}

IMAGE_PRESENT = "present"
IMAGE_GONE = "gone"
IMAGE_STATUSES: tuple[str, ...] = (IMAGE_PRESENT, IMAGE_GONE)

RUN_RUNNING = "running"
RUN_DONE = "done"
RUN_FAILED = "failed"
RUN_INTERRUPTED = "interrupted"
RUN_STATUSES: tuple[str, ...] = (RUN_RUNNING, RUN_DONE, RUN_FAILED, RUN_INTERRUPTED)
RUN_END_STATUSES: tuple[str, ...] = (RUN_DONE, RUN_FAILED, RUN_INTERRUPTED)
# A running build of another host that reported no progress for this long is taken as killed
# (on this host, its process id is checked). Long enough for an HNSW build of millions of points.
RUN_SILENT_AFTER_S = 3600
# A run keeps every count but only this many failure details, so one bad shard can't bloat the row.
MAX_STORED_FAILURES = 1000
MAX_STORED_PROBLEMS = 10_000  # problems of an ingest kept for `stats`; the summary has them all

INGEST_BATCH_SIZE = 500  # rows per transaction: a crash loses at most one batch of work
INGEST_WORKERS = 4  # threads decoding images; Pillow and hashlib release the GIL
QUERY_CHUNK = 500  # ids per `IN (...)` clause, below SQLite's variable limit

# Column widths of the SQL schema (PostgreSQL enforces them, SQLite ignores them).
ID_LENGTH = 36
NAME_LENGTH = 255
KEY_LENGTH = 1024
PATH_LENGTH = 2048
SHA256_LENGTH = 64
STATUS_LENGTH = 16

NO_VALUE_LABEL = "(none)"  # how `stats` shows an empty kingdom or split

# The embedded store (index.edge_store). One process at a time holds this file in the store folder
# (fcntl.flock), before any shard is created or loaded; it records the holder's pid.
STORE_LOCK_FILE = ".lock"
# The engine writes through memory-mapped sparse files (WAL segments, vector chunks, payload pages,
# 32 MiB each): a page written when the disk is full kills the process with SIGBUS, which Python
# cannot catch. So a write must find free at least what the shards' sparse files may still claim,
# plus this margin for the files the engine opens as it grows ($TOL_STORE_FREE_MARGIN_MB overrides).
FREE_SPACE_MARGIN_BYTES = 256 * 2**20
# What a new shard's sparse files claim once points are written (~200 MB measured for a 512-d model).
NEW_SHARD_BYTES = 256 * 2**20
# Readers beside the writer (index.edge_replica): the writer publishes generations of its shards,
# each reader keeps a replica of the current one under its own folder.
GENERATIONS_DIR = ".generations"
CURRENT_GENERATION_FILE = "CURRENT"
GENERATION_INFO_FILE = "generation.json"
GENERATION_LOCK_FILE = ".lock"  # readers hold it shared while copying; removal needs it exclusive
READERS_DIR = ".readers"
READER_LOCK_FILE = ".lock"  # held by the live reader; a free one marks a dead reader's replicas
# While readers are open, a writer publishes after a store call (a build's batch) at most this
# often, and always after optimize and on close: what readers may lag behind a running build.
PUBLISH_INTERVAL_S = 2.0
# A build's open segment grows until optimize, and each publish copies it: the next publish waits
# until publishing has taken at most this share of the writer's time.
PUBLISH_SHARE = 0.25
KEEP_GENERATIONS = 2  # the current one and the one before, which readers may still be copying
# A writer waits this long for a reader that is publishing what a killed writer left (it holds the lock).
CATCH_UP_WAIT_S = 300

EXIT_OK = 0
EXIT_NOTHING_READ = 1
EXIT_USAGE = 2

# BioCLIP's published species embeddings (SPEC §2 reference taxa): a (dim, N) float array of unit
# columns and N entries `[[kingdom, phylum, class, order, family, genus, epithet], common_name]`.
TOL_VECTORS_FILE = "txt_emb_species.npy"
TOL_NAMES_FILE = "txt_emb_species.json"
