-- Used by tests/db_postgres.rs (migrations at start-up).
CREATE TABLE accounts (
    id BIGSERIAL PRIMARY KEY,
    email TEXT NOT NULL UNIQUE
);
