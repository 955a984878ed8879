-- SQLite's planner did not match the lookups' `deleted = FALSE` to this partial index's
-- `WHERE deleted = 0`, so every InsertK8sApplication scanned the whole applications table
-- inside its write transaction (found by `edas-bench scale`: creation slowed linearly with the
-- number of applications). The same index, with the predicate spelled as the queries spell it.
DROP INDEX applications_live_name;
CREATE UNIQUE INDEX applications_live_name ON applications (region_id, name) WHERE deleted = FALSE;
