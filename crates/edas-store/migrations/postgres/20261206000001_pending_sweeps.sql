-- Clean-up of a deleted application's objects in its cluster that is still owed: written when
-- the deletion is decided (with it, when the cluster is unreachable or Force=true), removed once
-- the cluster confirmed that nothing labelled with the application id is left. It survives a
-- restart, so a cluster that comes back after an outage is swept then.
CREATE TABLE pending_sweeps (
    app_id     TEXT PRIMARY KEY REFERENCES applications (id),
    cluster_id TEXT NOT NULL,
    forced     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at INTEGER NOT NULL
);
CREATE INDEX pending_sweeps_by_cluster ON pending_sweeps (cluster_id);
