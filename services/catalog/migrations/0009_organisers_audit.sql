-- Organisers and the audit log.
--
-- The organiser role: creates events and manages only its own. (The role
-- check is auth's column; it is widened here, with the rest of this
-- feature, because one migration carries it.)
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('customer', 'organiser', 'gate', 'admin'));

-- Who owns an event: the user (an organiser, or an admin) that created it.
-- NULL for events created before owners were recorded; only admins manage
-- those. No foreign key: a user id is auth's, and the catalog never joins it.
ALTER TABLE events ADD COLUMN owner_id BIGINT;
CREATE INDEX events_owner ON events (owner_id) WHERE owner_id IS NOT NULL;

-- Every write by an admin or an organiser, appended in the transaction of
-- the change it records. actor_id NULL: the command line. event_id is set
-- when the entry concerns an event, so its organiser can read its trail.
CREATE TABLE audit_log (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor_id  BIGINT,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    event_id  BIGINT,
    details   JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_event ON audit_log (event_id, id DESC) WHERE event_id IS NOT NULL;

-- Append-only: no UPDATE, DELETE or TRUNCATE, whoever asks.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
