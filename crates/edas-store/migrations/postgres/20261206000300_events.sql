-- Release events (the outbox), notification subscriptions and their deliveries. An event is
-- written in the transaction of the change-order transition it describes; a delivery row per
-- matching subscription is written with it, so nothing is lost or invented by a crash.
CREATE TABLE events (
    seq             BIGSERIAL PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    app_id          TEXT NOT NULL,
    change_order_id TEXT NOT NULL,
    kind            TEXT NOT NULL,
    at              BIGINT NOT NULL,
    data            JSONB NOT NULL
);
CREATE INDEX events_by_app ON events (app_id, seq);
CREATE INDEX events_by_change_order ON events (change_order_id, seq);

-- A subscription: every application (app_id NULL) or one, the event kinds it wants
-- (`,kind,kind,`; empty: all), its sink, and its target (URL and secret) sealed. Deliveries of
-- one subscription go out in order, by one edasd process at a time (the lease).
CREATE TABLE subscriptions (
    id               TEXT PRIMARY KEY,
    app_id           TEXT,
    kinds            TEXT NOT NULL,
    sink             TEXT NOT NULL,
    target           BYTEA NOT NULL,
    creator          TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    blocked_until    BIGINT,
    lease_owner      TEXT,
    lease_expires_at BIGINT
);

CREATE TABLE deliveries (
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    event_seq       BIGINT NOT NULL REFERENCES events (seq),
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, event_seq)
);
CREATE INDEX deliveries_pending ON deliveries (subscription_id, event_seq) WHERE state = 'pending';
CREATE INDEX deliveries_by_state ON deliveries (state, subscription_id, event_seq);
