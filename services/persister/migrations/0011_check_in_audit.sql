-- Check-ins by an organiser or an admin are audited (a gate's are its job):
-- the persister appends one `ticket.check_in` entry per such check-in from
-- the stream, so a replayed stream entry must not append a second. A ticket
-- is checked in once (`used` is final), so its target names the entry.
CREATE UNIQUE INDEX audit_log_check_in ON audit_log (target) WHERE action = 'ticket.check_in';
