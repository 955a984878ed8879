-- Who created a change order (`CreateUserId`), written with the order in the same transaction
-- (the actor of the audit record that explains its creation). It replaces a search of the
-- application's audit trail for every change order listed, which also answered the actor of
-- the newest record naming the order (often `system`, the engine) instead of its creator.
ALTER TABLE change_orders ADD COLUMN creator TEXT;
-- Existing orders: the actor of the oldest audit record that names them.
UPDATE change_orders SET creator = (
    SELECT a.actor FROM audit a
    WHERE a.app_id = change_orders.app_id AND a.detail ->> 'change_order' = change_orders.id
    ORDER BY a.at, a.id LIMIT 1
);
-- The metrics scrape counts unfinished change orders by status in one query.
CREATE INDEX change_orders_active_by_status ON change_orders (status) WHERE finished_at IS NULL;
-- pending_sweeps.created_at was created as a 32-bit INTEGER, too small for Unix milliseconds:
-- every sweep insert failed with "integer out of range" on PostgreSQL (SQLite's INTEGER is
-- 64-bit). BIGINT like every other time column.
ALTER TABLE pending_sweeps ALTER COLUMN created_at TYPE BIGINT;
