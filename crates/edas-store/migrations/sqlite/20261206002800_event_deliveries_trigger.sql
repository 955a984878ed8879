-- A release event's pending deliveries (one per matching subscription) are written by the
-- database as the event is inserted, in the same statement: the writer inserts a transition's
-- events in one statement instead of two per event (issue 25). Same rule as the PostgreSQL
-- store's explicit INSERT … SELECT.
CREATE TRIGGER events_deliveries AFTER INSERT ON events
BEGIN
    INSERT INTO deliveries (subscription_id, event_seq, state, attempts, updated_at)
    SELECT id, NEW.seq, 'pending', 0, NEW.at FROM subscriptions
    WHERE (app_id IS NULL OR app_id = NEW.app_id)
      AND (kinds = '' OR kinds LIKE '%,' || NEW.kind || ',%');
END;
