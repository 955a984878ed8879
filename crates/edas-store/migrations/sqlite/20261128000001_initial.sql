-- edas-store schema v1 (SQLite). Times are Unix epoch milliseconds (UTC), JSON documents are TEXT,
-- encrypted values are BLOBs (see crate docs). Keep in step with migrations/postgres.

CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

CREATE TABLE applications (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    region_id        TEXT NOT NULL,
    namespace_id     TEXT NOT NULL,
    cluster_id       TEXT NOT NULL,
    k8s_namespace    TEXT NOT NULL,
    current_revision INTEGER NOT NULL,
    state            TEXT NOT NULL,
    spec             TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    deleted          INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1))
) STRICT;
-- A live application's name is unique in its region; deleted ones keep their history.
CREATE UNIQUE INDEX applications_live_name ON applications (region_id, name) WHERE deleted = 0;
CREATE INDEX applications_by_namespace ON applications (namespace_id, cluster_id, name, id);
CREATE INDEX applications_by_cluster ON applications (cluster_id, name, id);

CREATE TABLE revisions (
    app_id     TEXT NOT NULL REFERENCES applications (id),
    number     INTEGER NOT NULL,
    spec       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (app_id, number)
) STRICT;

CREATE TABLE change_orders (
    id               TEXT PRIMARY KEY,
    app_id           TEXT NOT NULL REFERENCES applications (id),
    co_type          TEXT NOT NULL,
    status           INTEGER NOT NULL,
    version          INTEGER NOT NULL,
    revision         INTEGER,
    state            TEXT NOT NULL,
    description      TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    lease_owner      TEXT,
    lease_expires_at INTEGER
) STRICT;
-- At most one active (unfinished) change order per application: the race-proof guard of deploys.
CREATE UNIQUE INDEX change_orders_one_active ON change_orders (app_id) WHERE finished_at IS NULL;
CREATE INDEX change_orders_by_app_time ON change_orders (app_id, created_at, id);
CREATE INDEX change_orders_claimable ON change_orders (created_at, id) WHERE finished_at IS NULL;
CREATE INDEX change_orders_finished ON change_orders (finished_at, id) WHERE finished_at IS NOT NULL;

CREATE TABLE clusters (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    region_id    TEXT NOT NULL,
    cluster_type TEXT NOT NULL,
    config       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE config_maps (
    cluster_id    TEXT NOT NULL,
    k8s_namespace TEXT NOT NULL,
    name          TEXT NOT NULL,
    data          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (cluster_id, k8s_namespace, name)
) STRICT;

CREATE TABLE secrets (
    cluster_id     TEXT NOT NULL,
    k8s_namespace  TEXT NOT NULL,
    name           TEXT NOT NULL,
    data_encrypted BLOB NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (cluster_id, k8s_namespace, name)
) STRICT;

CREATE TABLE users (
    name       TEXT PRIMARY KEY,
    admin      INTEGER NOT NULL CHECK (admin IN (0, 1)),
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE access_keys (
    id               TEXT PRIMARY KEY,
    secret_encrypted BLOB NOT NULL,
    user_name        TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    enabled          INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    created_at       INTEGER NOT NULL
) STRICT;
CREATE INDEX access_keys_by_user ON access_keys (user_name, id);

CREATE TABLE policies (
    name       TEXT PRIMARY KEY,
    document   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE user_policies (
    user_name   TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    policy_name TEXT NOT NULL REFERENCES policies (name) ON DELETE CASCADE,
    PRIMARY KEY (user_name, policy_name)
) STRICT;

CREATE TABLE audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    resource   TEXT NOT NULL,
    app_id     TEXT,
    request_id TEXT,
    detail     TEXT NOT NULL
) STRICT;
CREATE INDEX audit_by_app_time ON audit (app_id, at, id);
CREATE INDEX audit_by_time ON audit (at, id);
