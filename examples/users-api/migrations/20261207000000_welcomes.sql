-- The `welcome` job's record: one row each time the welcome was sent (no e-mail is sent; the
-- row is the proof). The job runs once per SNS message, so a user has one row.
CREATE TABLE welcomes (
    user_id TEXT NOT NULL,
    sent_at TEXT NOT NULL
);
