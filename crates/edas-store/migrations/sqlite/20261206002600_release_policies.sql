-- Release policies (issue 21, an edasd extension): every set or delete of an application's
-- policy is a new row, version N+1, so the history stays and a change order can name the
-- version it ran with. `policy` is the policy document (edas-analysis's `ReleasePolicy`) as
-- JSON; NULL records a deletion at that version.
CREATE TABLE release_policies (
    app_id     TEXT NOT NULL REFERENCES applications (id),
    version    INTEGER NOT NULL CHECK (version > 0),
    policy     TEXT,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (app_id, version)
) STRICT;

