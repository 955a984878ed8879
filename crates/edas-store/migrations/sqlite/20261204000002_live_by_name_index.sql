-- ListApplication without a filter (and the engine's start-up pass over every application)
-- pages `WHERE deleted = FALSE ORDER BY name, id`: without this index every page sorted the
-- whole table, so walking 100,000 applications took minutes (found by `edas-bench scale`).
CREATE INDEX applications_live_by_name ON applications (name, id) WHERE deleted = FALSE;
