//! A throwaway PostgreSQL cluster per test (or an existing server from `APPRUNNER_TEST_DATABASE_URL`).
//!
//! Binaries are found through `APPRUNNER_TEST_PG_BIN`, then `pg_config --bindir`, then the highest
//! `/usr/lib/postgresql/*/bin`, then `PATH`. As root (CI), `initdb`/`postgres` refuse to run, so the
//! cluster runs as the `postgres` OS user (or a system user `apprunner-test`, created if needed).

use std::fmt;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Environment variable naming an existing server to use instead of throwaway clusters.
pub const DATABASE_URL_ENV: &str = "APPRUNNER_TEST_DATABASE_URL";
/// Environment variable naming the directory holding `initdb`, `pg_ctl`, `postgres` and `psql`.
pub const PG_BIN_ENV: &str = "APPRUNNER_TEST_PG_BIN";

const TMP_PREFIX: &str = "apprunner-pg-";
const START_ATTEMPTS: usize = 3;

/// A PostgreSQL server for one test: an own throwaway cluster (stopped and deleted on drop) or
/// the server named by `APPRUNNER_TEST_DATABASE_URL` (databases it created are dropped on drop).
///
/// ```no_run
/// let pg = apprunner_kit_tests::Postgres::start();
/// let url = pg.create_database("users");
/// // connect to `url` (postgres://postgres@127.0.0.1:PORT/users) ...
/// ```
pub struct Postgres {
    inner: Inner,
    bin: Option<PathBuf>,
}

enum Inner {
    Own(Cluster),
    External {
        url: String,
        created: Mutex<Vec<String>>,
    },
}

struct Cluster {
    bin: PathBuf,
    dir: Option<tempfile::TempDir>,
    port: u16,
    run_as: Option<(u32, u32)>,
    running: Mutex<bool>,
    tls: bool,
}

/// A server certificate and its key, PEM.
struct ServerTls<'a> {
    cert_pem: &'a str,
    key_pem: &'a str,
}

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Postgres");
        match &self.inner {
            Inner::Own(c) => d
                .field("data_dir", &c.data_dir())
                .field("port", &c.port)
                .field("running", &*lock(&c.running)),
            // The URL may carry a password: show host and port only.
            Inner::External { url, .. } => d.field("external", &host_port(url)),
        };
        d.finish()
    }
}

impl Postgres {
    /// Starts a throwaway cluster on 127.0.0.1 (or uses `APPRUNNER_TEST_DATABASE_URL` when set).
    /// Panics with a hint when PostgreSQL is not installed.
    pub fn start() -> Self {
        match std::env::var(DATABASE_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => Self {
                inner: Inner::External {
                    url: url.trim().to_owned(),
                    created: Mutex::new(Vec::new()),
                },
                bin: find_bin_dir(),
            },
            _ => {
                let bin = find_bin_dir().unwrap_or_else(|| {
                    panic!(
                        "PostgreSQL server binaries not found: set {PG_BIN_ENV} to the directory \
                         holding initdb/pg_ctl, install `postgresql`, or run ./scripts/test"
                    )
                });
                Self {
                    inner: Inner::Own(Cluster::start(&bin, None)),
                    bin: Some(bin),
                }
            }
        }
    }

    /// Starts a throwaway cluster on 127.0.0.1 that speaks TLS with this certificate and key
    /// (PEM): `ssl = on`, and TCP connections without TLS are rejected (`hostssl` lines only),
    /// so a client that connects has used TLS. Always an own cluster, even when
    /// `APPRUNNER_TEST_DATABASE_URL` is set. Panics with a hint when PostgreSQL is not
    /// installed.
    ///
    /// ```no_run
    /// let ca = apprunner_kit_tests::TestCa::generate();
    /// let pg = apprunner_kit_tests::Postgres::start_with_tls(ca.server_cert_pem(), ca.server_key_pem());
    /// // connect to localhost:{pg.port()} with sslmode=verify-full&sslrootcert={ca.ca_cert_path()}
    /// # let _ = pg;
    /// ```
    pub fn start_with_tls(cert_pem: &str, key_pem: &str) -> Self {
        let bin = find_bin_dir().unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries not found: set {PG_BIN_ENV} to the directory \
                 holding initdb/pg_ctl, install `postgresql`, or run ./scripts/test"
            )
        });
        let tls = ServerTls { cert_pem, key_pem };
        Self {
            inner: Inner::Own(Cluster::start(&bin, Some(&tls))),
            bin: Some(bin),
        }
    }

    /// Whether this is an own throwaway cluster (false when using `APPRUNNER_TEST_DATABASE_URL`).
    pub fn is_own_cluster(&self) -> bool {
        matches!(self.inner, Inner::Own(_))
    }

    /// URL of the `postgres` maintenance database (or `APPRUNNER_TEST_DATABASE_URL` as given).
    pub fn url(&self) -> String {
        match &self.inner {
            Inner::Own(c) => c.url("postgres"),
            Inner::External { url, .. } => url.clone(),
        }
    }

    /// Host to connect to (`127.0.0.1` for own clusters).
    pub fn host(&self) -> String {
        match &self.inner {
            Inner::Own(_) => "127.0.0.1".to_owned(),
            Inner::External { url, .. } => host_port(url).0,
        }
    }

    /// TCP port to connect to.
    pub fn port(&self) -> u16 {
        match &self.inner {
            Inner::Own(c) => c.port,
            Inner::External { url, .. } => host_port(url).1,
        }
    }

    /// Superuser name of own clusters (`postgres`; no password, trust authentication).
    pub fn user(&self) -> &'static str {
        "postgres"
    }

    /// Creates a database and returns its URL. On an own cluster the name is used as is; on an
    /// external server a unique suffix is appended (the returned URL names the real database).
    /// `name` must be a plain identifier (`[a-z0-9_]`).
    pub fn create_database(&self, name: &str) -> String {
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "database name {name:?} must match [a-z0-9_]+"
        );
        let (name, admin_url) = match &self.inner {
            Inner::Own(c) => (name.to_owned(), c.url("postgres")),
            Inner::External { url, .. } => {
                static COUNTER: AtomicUsize = AtomicUsize::new(0);
                let n = COUNTER.fetch_add(1, Ordering::Relaxed);
                let prefix: String = name.chars().take(40).collect();
                (format!("{prefix}_{}_{n}", std::process::id()), url.clone())
            }
        };
        self.psql_admin(&admin_url, &format!("CREATE DATABASE \"{name}\""));
        if let Inner::External { created, .. } = &self.inner {
            lock(created).push(name.clone());
        }
        self.database_url(&name)
    }

    /// URL of database `name` on this server (which need not exist).
    pub fn database_url(&self, name: &str) -> String {
        match &self.inner {
            Inner::Own(c) => c.url(name),
            Inner::External { url, .. } => replace_database(url, name),
        }
    }

    /// The directory holding the PostgreSQL binaries, when found.
    pub fn bin_dir(&self) -> Option<&Path> {
        self.bin.as_deref()
    }

    /// The `psql` binary of the same installation (or `psql` from `PATH`).
    pub fn psql_path(&self) -> PathBuf {
        self.bin
            .as_ref()
            .map(|b| b.join("psql"))
            .filter(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("psql"))
    }

    /// Data directory of an own cluster.
    pub fn data_dir(&self) -> Option<PathBuf> {
        match &self.inner {
            Inner::Own(c) => Some(c.data_dir()),
            Inner::External { .. } => None,
        }
    }

    /// Stops an own cluster (`pg_ctl stop -m fast`: clients are disconnected). Data is kept, and
    /// [`Self::restart`] brings it back on the same port. Panics on an external server.
    pub fn stop(&self) {
        self.own("stop").stop("fast");
    }

    /// Starts a stopped own cluster again (or stops then starts a running one) on the same port.
    /// Panics on an external server.
    pub fn restart(&self) {
        let c = self.own("restart");
        c.stop("fast");
        c.start_server();
    }

    fn own(&self, what: &str) -> &Cluster {
        match &self.inner {
            Inner::Own(c) => c,
            Inner::External { .. } => {
                panic!("Postgres::{what} needs an own cluster; unset {DATABASE_URL_ENV}")
            }
        }
    }

    fn psql_admin(&self, url: &str, sql: &str) {
        let out = Command::new(self.psql_path())
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
            .output()
            .unwrap_or_else(|e| {
                panic!("could not run psql ({e}): install postgresql-client or set {PG_BIN_ENV}")
            });
        assert!(
            out.status.success(),
            "psql `{sql}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Resilience scenarios: an own cluster whose application role logs in with a password, and the
/// server-side events (restart, stop, start, terminated connections, a new password).
impl Postgres {
    /// Starts an own throwaway cluster even when `APPRUNNER_TEST_DATABASE_URL` is set (scenarios
    /// that restart the server or change `pg_hba.conf` need one).
    pub fn start_own() -> Self {
        let bin = find_bin_dir().unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries not found: set {PG_BIN_ENV} to the directory \
                 holding initdb/pg_ctl, install `postgresql`, or run ./scripts/test"
            )
        });
        Self {
            inner: Inner::Own(Cluster::start(&bin, None)),
            bin: Some(bin),
        }
    }

    /// Creates login role `role` with `password` and a database `database` it owns, and requires
    /// the password from that role over TCP (`scram-sha-256` in `pg_hba.conf`; the superuser the
    /// harness uses stays trusted). Returns `postgres://role:password@127.0.0.1:PORT/database`.
    /// Own clusters only; `role`, `password` and `database` must be plain (`[A-Za-z0-9_-]`).
    pub fn create_password_role(&self, role: &str, password: &str, database: &str) -> String {
        let c = self.own("create_password_role");
        for part in [role, password, database] {
            assert!(
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{part:?} must match [A-Za-z0-9_-]+"
            );
        }
        self.sql(&format!(
            "CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'"
        ));
        self.sql(&format!("CREATE DATABASE \"{database}\" OWNER \"{role}\""));
        let hba = c.data_dir().join("pg_hba.conf");
        let rules = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
        // First match wins: this line before the cluster's `trust` lines.
        std::fs::write(
            &hba,
            format!("host all {role} 127.0.0.1/32 scram-sha-256\n{rules}"),
        )
        .expect("write pg_hba.conf");
        self.sql("SELECT pg_reload_conf()");
        format!(
            "postgres://{role}:{password}@127.0.0.1:{}/{database}",
            c.port
        )
    }

    /// Runs `sql` as the superuser on the `postgres` database and returns what it printed
    /// (`psql -At`: unaligned rows, one per line). Panics on failure.
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new(self.psql_path())
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url())
            .args(["-c", sql])
            .output()
            .unwrap_or_else(|e| {
                panic!("could not run psql ({e}): install postgresql-client or set {PG_BIN_ENV}")
            });
        assert!(
            out.status.success(),
            "psql `{sql}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `ALTER ROLE role PASSWORD 'password'` (a rotation's `setSecret` step).
    pub fn alter_password(&self, role: &str, password: &str) {
        self.sql(&format!("ALTER ROLE \"{role}\" PASSWORD '{password}'"));
    }

    /// `pg_terminate_backend` on every idle connection of `role`; returns how many.
    pub fn terminate_idle(&self, role: &str) -> usize {
        self.sql(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE usename = '{role}' AND state = 'idle'"
        ))
        .parse()
        .expect("a count")
    }

    /// `pg_terminate_backend` on every connection of `role`, busy or idle; returns how many.
    pub fn terminate_all(&self, role: &str) -> usize {
        self.sql(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = '{role}'"
        ))
        .parse()
        .expect("a count")
    }

    /// `pg_ctl restart -m fast`: clients are disconnected, the server is back when it returns.
    pub fn restart_fast(&self) {
        let c = self.own("restart_fast");
        let mut running = lock(&c.running);
        let out = c
            .command("pg_ctl")
            .arg("-D")
            .arg(c.data_dir())
            .arg("-l")
            .arg(c.log_file())
            .args(["-m", "fast", "-w", "-t", "60", "restart"])
            .output()
            .expect("run pg_ctl restart");
        check("pg_ctl restart", &out);
        *running = true;
    }

    /// Starts an own cluster stopped by [`Self::stop`] again, on the same port; returns when it
    /// accepts connections.
    pub fn start_again(&self) {
        self.own("start_again").start_server();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Inner::External { url, created } = &self.inner {
            for name in lock(created).drain(..) {
                let _ = Command::new(self.psql_path())
                    .args(["-X", "-q", "-d", url, "-c"])
                    .arg(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .output();
            }
        }
    }
}

impl Cluster {
    fn start(bin: &Path, tls: Option<&ServerTls<'_>>) -> Self {
        sweep_stale_clusters(bin);
        let run_as = if is_root() {
            Some(service_user())
        } else {
            None
        };
        // As root, TMPDIR may point into /root (0700), unreachable for the server user.
        let base = if run_as.is_some() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempdir_in(&base)
            .expect("create a temporary directory for PostgreSQL");
        std::fs::write(dir.path().join("owner.pid"), std::process::id().to_string())
            .expect("write owner.pid");
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("chown the PostgreSQL directory to the server user");
        }
        let mut cluster = Self {
            bin: bin.to_owned(),
            dir: Some(dir),
            port: 0,
            run_as,
            running: Mutex::new(false),
            tls: tls.is_some(),
        };
        cluster.initdb();
        if let Some(tls) = tls {
            cluster.write_tls(tls);
        }
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            cluster.port = crate::free_port();
            cluster.write_config();
            match cluster.try_start_server() {
                Ok(()) => return cluster,
                // Most likely someone took the port between probing and binding: try another.
                Err(e) => last_error = e,
            }
        }
        panic!("PostgreSQL did not start after {START_ATTEMPTS} attempts: {last_error}");
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().expect("cluster directory").path()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir().join("server.log")
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.current_dir(self.dir())
            .env("LC_ALL", "C")
            .env_remove("PGDATA");
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn initdb(&self) {
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.data_dir())
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .output()
            .unwrap_or_else(|e| panic!("could not run {}/initdb: {e}", self.bin.display()));
        check("initdb", &out);
    }

    fn write_config(&self) {
        let conf = format!(
            "\n# apprunner-kit test harness\n\
             listen_addresses = '127.0.0.1'\n\
             port = {}\n\
             unix_socket_directories = '{}'\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             shared_buffers = 16MB\n\
             max_connections = 100\n{}",
            self.port,
            self.dir().display(),
            if self.tls {
                "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
            } else {
                ""
            }
        );
        let path = self.data_dir().join("postgresql.auto.conf");
        let mut existing = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(i) = existing.find("\n# apprunner-kit test harness\n") {
            existing.truncate(i);
        }
        std::fs::write(&path, existing + &conf).expect("write postgresql.auto.conf");
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                .expect("chown postgresql.auto.conf");
        }
    }

    /// Writes `server.crt` and `server.key` (0600, owned by the server user) into the data
    /// directory, and a `pg_hba.conf` that accepts TCP connections over TLS only.
    fn write_tls(&self, tls: &ServerTls<'_>) {
        use std::os::unix::fs::PermissionsExt as _;
        let data = self.data_dir();
        let hba = "# apprunner-kit test harness: TLS only over TCP\n\
                   local all all trust\n\
                   hostssl all all 127.0.0.1/32 trust\n\
                   hostssl all all ::1/128 trust\n\
                   hostnossl all all 0.0.0.0/0 reject\n\
                   hostnossl all all ::/0 reject\n";
        for (file, text, mode) in [
            ("server.crt", tls.cert_pem, 0o600),
            ("server.key", tls.key_pem, 0o600),
            ("pg_hba.conf", hba, 0o600),
        ] {
            let path = data.join(file);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {file}: {e}"));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .unwrap_or_else(|e| panic!("chmod {file}: {e}"));
            if let Some((uid, gid)) = self.run_as {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("chown {file}: {e}"));
            }
        }
    }

    fn try_start_server(&self) -> Result<(), String> {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_file())
            .args(["-w", "-t", "60", "start"])
            .output()
            .map_err(|e| format!("could not run pg_ctl: {e}"))?;
        if out.status.success() {
            *lock(&self.running) = true;
            Ok(())
        } else {
            Err(format!(
                "pg_ctl start failed ({}): {}{}\nserver log:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(self.log_file()).unwrap_or_default()
            ))
        }
    }

    fn start_server(&self) {
        if let Err(e) = self.try_start_server() {
            panic!("{e}");
        }
    }

    fn stop(&self, mode: &str) {
        let mut running = lock(&self.running);
        if !*running {
            return;
        }
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", mode, "-w", "-t", "60", "stop"])
            .output()
            .expect("run pg_ctl stop");
        check("pg_ctl stop", &out);
        *running = false;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if *lock(&self.running) {
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "immediate", "-w", "-t", "30", "stop"])
                .output();
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

fn check(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn is_root() -> bool {
    // /proc/self is owned by the effective uid of the process.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// (uid, gid) of the OS user the server runs as when the tests run as root.
fn service_user() -> (u32, u32) {
    static USER: Mutex<Option<(u32, u32)>> = Mutex::new(None);
    let mut cached = lock(&USER);
    if let Some(ids) = *cached {
        return ids;
    }
    let ids = user_ids("postgres")
        .or_else(|| user_ids("apprunner-test"))
        .or_else(|| {
            // Another test process may create it at the same time: ignore the result, re-check.
            let _ = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                ])
                .arg("apprunner-test")
                .output()
                .or_else(|_| {
                    Command::new("/usr/sbin/useradd")
                        .args([
                            "--system",
                            "--no-create-home",
                            "--shell",
                            "/usr/sbin/nologin",
                        ])
                        .arg("apprunner-test")
                        .output()
                });
            user_ids("apprunner-test")
        })
        .expect(
            "running as root: PostgreSQL needs a non-root OS user, but neither `postgres` exists \
             nor could `useradd --system apprunner-test` create one",
        );
    *cached = Some(ids);
    ids
}

fn user_ids(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").arg(flag).arg(user).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

fn has_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("pg_ctl").is_file()
}

/// Finds the directory holding `initdb` and `pg_ctl`.
pub fn find_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(PG_BIN_ENV).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        assert!(
            has_server(&dir),
            "{PG_BIN_ENV}={} holds no initdb/pg_ctl",
            dir.display()
        );
        return Some(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_server(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).find(|d| has_server(d))
}

/// Stops and deletes clusters left behind by test processes that died (killed, aborted).
fn sweep_stale_clusters(bin: &Path) {
    for dir in crate::orphaned_temp_dirs(TMP_PREFIX) {
        let data = dir.join("data");
        if data.join("postmaster.pid").exists() {
            let mut cmd = Command::new(bin.join("pg_ctl"));
            cmd.arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "stop"]);
            if let Ok(meta) = std::fs::metadata(&data)
                && is_root()
            {
                cmd.uid(meta.uid()).gid(meta.gid()).current_dir(&dir);
            }
            let _ = cmd.output();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `(host, port)` of a `postgres://` URL (port 5432 when absent).
fn host_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match hostport.strip_prefix('[') {
        // [IPv6]:port
        Some(v6) => match v6.split_once(']') {
            Some((h, rest)) => (h, rest.strip_prefix(':')),
            None => (v6, None),
        },
        None => match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        },
    };
    (
        host.to_owned(),
        port.and_then(|p| p.parse().ok()).unwrap_or(5432),
    )
}

/// The URL with its database path replaced by `db` (query string kept).
fn replace_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or_default();
    let mut out = format!("{scheme}://{authority}/{db}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            host_port("postgres://u:p@db.example:6543/app?sslmode=disable"),
            ("db.example".to_owned(), 6543)
        );
        assert_eq!(
            host_port("postgresql://localhost/app"),
            ("localhost".to_owned(), 5432)
        );
        assert_eq!(
            host_port("postgres://u@[::1]:7000/x"),
            ("::1".to_owned(), 7000)
        );
        assert_eq!(
            replace_database("postgres://u:p@h:1/app?sslmode=disable", "other"),
            "postgres://u:p@h:1/other?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://h", "x"), "postgres://h/x");
    }
}
