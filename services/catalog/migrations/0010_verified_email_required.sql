-- Events may require a verified e-mail to hold (403 email_unverified).
-- Published with the event into its Redis meta (`ve`), where the hold
-- functions read it; a change after publishing is written there too.
ALTER TABLE events ADD COLUMN verified_email_required BOOLEAN NOT NULL DEFAULT false;
