//! Gives the `sqlx::query!` macros in `db_sqlite.rs` a database to check against at compile
//! time: an empty in-memory SQLite database (the queries only touch `sqlite_master`), whatever
//! `DATABASE_URL` the developer's shell has.

fn main() {
    println!("cargo:rustc-env=DATABASE_URL=sqlite::memory:");
    println!("cargo:rustc-env=SQLX_OFFLINE=false");
    println!("cargo:rerun-if-changed=build.rs");
}
