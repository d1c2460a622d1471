-- The gate role: staff who check tickets in at an event's doors. Given by
-- an admin (`stampede admin set-role`).
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('customer', 'gate', 'admin'));
