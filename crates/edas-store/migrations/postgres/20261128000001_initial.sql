-- edas-store schema v1 (PostgreSQL). Times are Unix epoch milliseconds (UTC), JSON documents are
-- JSONB, encrypted values are BYTEA (see crate docs). Keep in step with migrations/sqlite.

CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE applications (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    region_id        TEXT NOT NULL,
    namespace_id     TEXT NOT NULL,
    cluster_id       TEXT NOT NULL,
    k8s_namespace    TEXT NOT NULL,
    current_revision BIGINT NOT NULL,
    state            TEXT NOT NULL,
    spec             JSONB NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    deleted          BOOLEAN NOT NULL DEFAULT FALSE
);
-- A live application's name is unique in its region; deleted ones keep their history.
CREATE UNIQUE INDEX applications_live_name ON applications (region_id, name) WHERE NOT deleted;
CREATE INDEX applications_by_namespace ON applications (namespace_id, cluster_id, name, id);
CREATE INDEX applications_by_cluster ON applications (cluster_id, name, id);

CREATE TABLE revisions (
    app_id     TEXT NOT NULL REFERENCES applications (id),
    number     BIGINT NOT NULL,
    spec       JSONB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, number)
);

CREATE TABLE change_orders (
    id               TEXT PRIMARY KEY,
    app_id           TEXT NOT NULL REFERENCES applications (id),
    co_type          TEXT NOT NULL,
    status           INTEGER NOT NULL,
    version          BIGINT NOT NULL,
    revision         BIGINT,
    state            JSONB NOT NULL,
    description      TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    finished_at      BIGINT,
    lease_owner      TEXT,
    lease_expires_at BIGINT
);
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
    config       JSONB NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE config_maps (
    cluster_id    TEXT NOT NULL,
    k8s_namespace TEXT NOT NULL,
    name          TEXT NOT NULL,
    data          JSONB NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, k8s_namespace, name)
);

CREATE TABLE secrets (
    cluster_id     TEXT NOT NULL,
    k8s_namespace  TEXT NOT NULL,
    name           TEXT NOT NULL,
    data_encrypted BYTEA NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, k8s_namespace, name)
);

CREATE TABLE users (
    name       TEXT PRIMARY KEY,
    admin      BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE access_keys (
    id               TEXT PRIMARY KEY,
    secret_encrypted BYTEA NOT NULL,
    user_name        TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    enabled          BOOLEAN NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX access_keys_by_user ON access_keys (user_name, id);

CREATE TABLE policies (
    name       TEXT PRIMARY KEY,
    document   JSONB NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE user_policies (
    user_name   TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    policy_name TEXT NOT NULL REFERENCES policies (name) ON DELETE CASCADE,
    PRIMARY KEY (user_name, policy_name)
);

CREATE TABLE audit (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    resource   TEXT NOT NULL,
    app_id     TEXT,
    request_id TEXT,
    detail     JSONB NOT NULL
);
CREATE INDEX audit_by_app_time ON audit (app_id, at, id);
CREATE INDEX audit_by_time ON audit (at, id);
