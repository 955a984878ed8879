-- ListApplication without a filter (and the engine's start-up pass over every application)
-- pages `WHERE deleted = FALSE ORDER BY name, id`: without this index every page sorted the
-- whole table (found by `edas-bench scale` on SQLite; the same plan applies here).
CREATE INDEX applications_live_by_name ON applications (name, id) WHERE NOT deleted;
