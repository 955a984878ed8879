-- Live applications per EDAS namespace and cluster, kept by triggers in the transaction of
-- every change: ListApplication's total is a sum over a few rows instead of a COUNT over every
-- live application (about 30 ms at 1,000,000; issue 25). The triggers fire only on the columns
-- that move a count, so a deploy (which updates the revision and spec) pays nothing.
CREATE TABLE application_counts (
    namespace_id TEXT NOT NULL,
    cluster_id   TEXT NOT NULL,
    live         INTEGER NOT NULL,
    PRIMARY KEY (namespace_id, cluster_id)
) STRICT;

INSERT INTO application_counts (namespace_id, cluster_id, live)
SELECT namespace_id, cluster_id, COUNT(*) FROM applications WHERE deleted = 0
GROUP BY namespace_id, cluster_id;

CREATE TRIGGER application_counts_insert AFTER INSERT ON applications
WHEN NEW.deleted = 0
BEGIN
    INSERT INTO application_counts (namespace_id, cluster_id, live)
    VALUES (NEW.namespace_id, NEW.cluster_id, 1)
    ON CONFLICT (namespace_id, cluster_id) DO UPDATE SET live = live + 1;
END;

CREATE TRIGGER application_counts_update_old
AFTER UPDATE OF deleted, namespace_id, cluster_id ON applications
WHEN OLD.deleted = 0
BEGIN
    UPDATE application_counts SET live = live - 1
    WHERE namespace_id = OLD.namespace_id AND cluster_id = OLD.cluster_id;
END;

CREATE TRIGGER application_counts_update_new
AFTER UPDATE OF deleted, namespace_id, cluster_id ON applications
WHEN NEW.deleted = 0
BEGIN
    INSERT INTO application_counts (namespace_id, cluster_id, live)
    VALUES (NEW.namespace_id, NEW.cluster_id, 1)
    ON CONFLICT (namespace_id, cluster_id) DO UPDATE SET live = live + 1;
END;

CREATE TRIGGER application_counts_delete AFTER DELETE ON applications
WHEN OLD.deleted = 0
BEGIN
    UPDATE application_counts SET live = live - 1
    WHERE namespace_id = OLD.namespace_id AND cluster_id = OLD.cluster_id;
END;
