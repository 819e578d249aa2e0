-- The users of the users API.
--
-- This file runs unchanged on PostgreSQL (production, Aurora) and SQLite (local default), so it
-- keeps to what both understand:
--   * `id` is a UUIDv7 in its canonical text form, made by the service (no SERIAL/IDENTITY,
--     which SQLite lacks; version 7 ids sort by creation time, and are not guessable the way
--     sequential ids are);
--   * timestamps are UTC RFC 3339 text with milliseconds (`2026-11-22T17:49:00.123Z`), made by
--     the service (TIMESTAMPTZ values would decode to different types on the two databases);
--   * `password_hash` is an argon2id PHC string; no route ever returns it.
CREATE TABLE users (
    id            TEXT NOT NULL PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
