//! A throwaway MariaDB server per test process (or an existing server from
//! `APPRUNNER_TEST_MYSQL_URL`).
//!
//! `mariadb-install-db` initialises a data directory under `/tmp`, then `mariadbd` serves it on
//! 127.0.0.1 and a free port. As root (CI), both run as the `mysql` OS user (`--user=mysql`).
//! Binaries are found through `APPRUNNER_TEST_MARIADB_BIN` (a directory), then `PATH`, then
//! `/usr/sbin` and `/usr/bin`; `./scripts/test` installs `mariadb-server` when they are missing.

use std::fmt;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Environment variable naming an existing server (`mysql://user:password@host:port`) to use
/// instead of a throwaway one.
pub const MYSQL_URL_ENV: &str = "APPRUNNER_TEST_MYSQL_URL";
/// Environment variable naming the directory holding `mariadbd` and `mariadb-install-db`.
pub const MARIADB_BIN_ENV: &str = "APPRUNNER_TEST_MARIADB_BIN";

const TMP_PREFIX: &str = "apprunner-mariadb-";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A MariaDB server for tests: an own throwaway server (killed and deleted on drop), or the one
/// named by `APPRUNNER_TEST_MYSQL_URL` (databases created on it are dropped on drop).
///
/// ```no_run
/// let db = apprunner_kit_tests::MariaDb::start();
/// let url = db.create_database("users"); // mysql://root@127.0.0.1:PORT/users
/// # let _ = url;
/// ```
pub struct MariaDb {
    inner: Inner,
    created: Mutex<Vec<String>>,
}

enum Inner {
    Own {
        child: Mutex<Option<Child>>,
        dir: Option<tempfile::TempDir>,
        port: u16,
        socket: PathBuf,
        client: PathBuf,
        /// How to start `mariadbd` again on the same port and data ([`MariaDb::start_again`]).
        server: Box<Command>,
        log: PathBuf,
    },
    External {
        url: String,
    },
}

impl fmt::Debug for MariaDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Own { dir, port, .. } => f
                .debug_struct("MariaDb")
                .field("dir", &dir.as_ref().map(|d| d.path().to_owned()))
                .field("port", port)
                .finish(),
            // The URL may carry a password: show host and port only.
            Inner::External { url } => f
                .debug_struct("MariaDb")
                .field("external", &authority(url).2)
                .finish(),
        }
    }
}

impl MariaDb {
    /// Starts a throwaway server (or uses `APPRUNNER_TEST_MYSQL_URL`). Panics with a hint when
    /// MariaDB is not installed.
    pub fn start() -> Self {
        let inner = match std::env::var(MYSQL_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => Inner::External {
                url: url.trim().trim_end_matches('/').to_owned(),
            },
            _ => start_own(),
        };
        Self {
            inner,
            created: Mutex::new(Vec::new()),
        }
    }

    /// `mysql://user[:password]@host:port` (no database).
    pub fn url(&self) -> String {
        match &self.inner {
            Inner::Own { port, .. } => format!("mysql://root@127.0.0.1:{port}"),
            Inner::External { url } => {
                let (scheme, userinfo, hostport) = authority(url);
                match userinfo {
                    Some(u) => format!("{scheme}://{u}@{hostport}"),
                    None => format!("{scheme}://{hostport}"),
                }
            }
        }
    }

    /// Host to connect to.
    pub fn host(&self) -> String {
        let (_, _, hostport) = authority(&self.url());
        hostport
            .rsplit_once(':')
            .map_or(hostport.clone(), |(h, _)| h.to_owned())
    }

    /// TCP port to connect to.
    pub fn port(&self) -> u16 {
        let (_, _, hostport) = authority(&self.url());
        hostport
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(3306)
    }

    /// Creates a database with a unique name starting with `name` (`[a-z0-9_]`) and returns
    /// its URL.
    pub fn create_database(&self, name: &str) -> String {
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "database name {name:?} must match [a-z0-9_]+"
        );
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix: String = name.chars().take(40).collect();
        let db = format!("{prefix}_{}_{n}", std::process::id());
        self.sql(&format!("CREATE DATABASE `{db}`"));
        self.created
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(db.clone());
        format!("{}/{db}", self.url())
    }

    /// Runs SQL as the administrator (panics on failure).
    pub fn sql(&self, sql: &str) {
        let out = self
            .client_command()
            .args(["-e", sql])
            .output()
            .unwrap_or_else(|e| {
                panic!("could not run the mariadb client ({e}): install mariadb-client")
            });
        assert!(
            out.status.success(),
            "mariadb `{sql}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn client_command(&self) -> Command {
        match &self.inner {
            Inner::Own { client, socket, .. } => admin_client(client, socket),
            Inner::External { url } => {
                let (_, userinfo, hostport) = authority(url);
                let (host, port) = hostport
                    .rsplit_once(':')
                    .map_or((hostport.as_str(), "3306"), |(h, p)| (h, p));
                let (user, password) = match userinfo.as_deref().map(|u| u.split_once(':')) {
                    Some(Some((u, p))) => (u.to_owned(), Some(p.to_owned())),
                    Some(None) => (userinfo.clone().unwrap_or_default(), None),
                    None => ("root".to_owned(), None),
                };
                let mut cmd = Command::new(
                    find_binary(&["mariadb", "mysql"]).unwrap_or_else(|| PathBuf::from("mariadb")),
                );
                cmd.args([
                    "--no-defaults",
                    "--protocol=tcp",
                    "-h",
                    host,
                    "-P",
                    port,
                    "-u",
                ])
                .arg(user);
                if let Some(p) = password {
                    // Not on the command line (visible in ps): through the environment.
                    cmd.env("MYSQL_PWD", p);
                }
                cmd
            }
        }
    }
}

/// Resilience scenarios: an own server, a user that logs in with a password, and the
/// server-side events (restart, stop, start, killed connections, a new password).
impl MariaDb {
    /// Starts an own throwaway server even when `APPRUNNER_TEST_MYSQL_URL` is set (scenarios
    /// that stop the server need one).
    pub fn start_own() -> Self {
        Self {
            inner: start_own(),
            created: Mutex::new(Vec::new()),
        }
    }

    /// Creates database `database` and user `user`@`%` identified by `password`, with every
    /// privilege on that database; returns `mysql://user:password@127.0.0.1:PORT/database`.
    /// All three must be plain (`[A-Za-z0-9_-]`).
    pub fn create_password_user(&self, user: &str, password: &str, database: &str) -> String {
        for part in [user, password, database] {
            assert!(
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{part:?} must match [A-Za-z0-9_-]+"
            );
        }
        // Host '%': clients connect over TCP from 127.0.0.1 and the server resolves no names.
        self.sql(&format!(
            "CREATE DATABASE `{database}`; \
             CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'; \
             GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'%'"
        ));
        self.created
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(database.to_owned());
        format!(
            "mysql://{user}:{password}@{}:{}/{database}",
            self.host(),
            self.port()
        )
    }

    /// `ALTER USER 'user'@'%' IDENTIFIED BY 'password'` (a rotation's `setSecret` step).
    pub fn alter_password(&self, user: &str, password: &str) {
        self.sql(&format!(
            "ALTER USER '{user}'@'%' IDENTIFIED BY '{password}'"
        ));
    }

    /// Runs `sql` as the administrator; returns the rows it printed (tab-separated columns, no
    /// header). Panics on failure.
    pub fn query_rows(&self, sql: &str) -> Vec<String> {
        let out = self
            .client_command()
            .args(["-N", "-B", "-e", sql])
            .output()
            .unwrap_or_else(|e| {
                panic!("could not run the mariadb client ({e}): install mariadb-client")
            });
        assert!(
            out.status.success(),
            "mariadb `{sql}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// `KILL` on every idle (`Sleep`) connection of `user`, all in one client session (as one
    /// `pg_terminate_backend` query does on PostgreSQL); returns how many were listed.
    pub fn kill_idle(&self, user: &str) -> usize {
        let ids = self.query_rows(&format!(
            "SELECT ID FROM information_schema.PROCESSLIST \
             WHERE USER = '{user}' AND COMMAND = 'Sleep'"
        ));
        if ids.is_empty() {
            return 0;
        }
        let kills: String = ids.iter().map(|id| format!("KILL {id};")).collect();
        // --force: go on past ER_NO_SUCH_THREAD (a connection that ended meanwhile).
        let _ = self
            .client_command()
            .args(["--force", "-e", &kills])
            .output();
        ids.len()
    }

    /// Shuts an own server down (SIGTERM, as `systemctl stop` does: connections are closed) and
    /// waits for it to exit. Panics on an external server.
    pub fn stop(&self) {
        let Inner::Own { child, .. } = &self.inner else {
            panic!("MariaDb::stop needs an own server; unset {MYSQL_URL_ENV}");
        };
        let mut child = child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(mut running) = child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &running.id().to_string()])
            .output();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(_)) = running.try_wait() {
                return;
            }
            if Instant::now() > deadline {
                let _ = running.kill();
                let _ = running.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts an own server stopped by [`Self::stop`] again, same port and data; returns when
    /// it answers.
    pub fn start_again(&self) {
        let Inner::Own {
            child,
            server,
            client,
            socket,
            log,
            ..
        } = &self.inner
        else {
            panic!("MariaDb::start_again needs an own server; unset {MYSQL_URL_ENV}");
        };
        let mut slot = child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_some() {
            return;
        }
        // `Command` is not `Clone`: rebuild it from its parts.
        let mut command = Command::new(server.get_program());
        command
            .args(server.get_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut started = command.spawn().expect("start mariadbd again");
        if let Err(e) = wait_ready(&mut started, client, socket, log) {
            let _ = started.kill();
            let _ = started.wait();
            panic!("MariaDB did not start again: {e}");
        }
        *slot = Some(started);
    }

    /// [`Self::stop`] then [`Self::start_again`].
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Inner::External { .. } = self.inner {
            let names: Vec<String> = self
                .created
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .drain(..)
                .collect();
            for db in names {
                let _ = self
                    .client_command()
                    .args(["-e", &format!("DROP DATABASE IF EXISTS `{db}`")])
                    .output();
            }
        }
        if let Inner::Own { child, dir, .. } = &mut self.inner {
            if let Some(mut child) = child
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
            {
                let _ = child.kill();
                let _ = child.wait();
            }
            if let Some(dir) = dir.take() {
                let _ = dir.close();
            }
        }
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn find_binary(names: &[&str]) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os(MARIADB_BIN_ENV).filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(dir));
    }
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    dirs.extend(["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from));
    names
        .iter()
        .flat_map(|name| dirs.iter().map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

fn start_own() -> Inner {
    let hint = format!(
        "MariaDB not found: install mariadb-server (./scripts/test does), set {MARIADB_BIN_ENV} \
         to the directory holding mariadbd, or set {MYSQL_URL_ENV} to an existing server"
    );
    let server = find_binary(&["mariadbd", "mysqld"]).unwrap_or_else(|| panic!("{hint}"));
    let install = find_binary(&["mariadb-install-db", "mysql_install_db"])
        .unwrap_or_else(|| panic!("{hint}"));
    let client = find_binary(&["mariadb", "mysql"]).unwrap_or_else(|| panic!("{hint}"));
    sweep_stale();
    let as_root = is_root();
    // As root, TMPDIR may be inside /root (0700), unreachable for the mysql user.
    let base = if as_root {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    };
    let dir = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempdir_in(&base)
        .expect("create a temporary directory for MariaDB");
    std::fs::write(dir.path().join("owner.pid"), std::process::id().to_string())
        .expect("write owner.pid");
    let data = dir.path().join("data");
    let user_args: Vec<String> = if as_root {
        let (uid, gid) = mysql_user_ids().expect(
            "running as root: MariaDB runs as the `mysql` OS user, which does not exist \
             (install mariadb-server)",
        );
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
            .expect("chown the MariaDB directory to the mysql user");
        vec!["--user=mysql".to_owned()]
    } else {
        Vec::new()
    };
    let out = Command::new(&install)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args([
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ])
        .args(&user_args)
        .output()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", install.display()));
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}{}",
        install.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let socket = dir.path().join("mysqld.sock");
    let log = dir.path().join("server.log");
    let mut last_error = String::new();
    for _ in 0..3 {
        let port = crate::free_port();
        let mut command = Command::new(&server);
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mysqld.pid").display()
            ))
            .arg(format!("--log-error={}", log.display()))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=16M",
                "--max-connections=200",
            ])
            .args(&user_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", server.display()));
        match wait_ready(&mut child, &client, &socket, &log) {
            Ok(()) => {
                // Over TCP, clients come from 127.0.0.1 (no name resolution): let root in
                // from there, without a password, as on a developer machine.
                let out = admin_client(&client, &socket)
                    .args([
                        "-e",
                        "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; \
                         GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; \
                         FLUSH PRIVILEGES",
                    ])
                    .output()
                    .expect("run the mariadb client");
                assert!(
                    out.status.success(),
                    "granting root@127.0.0.1 failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                return Inner::Own {
                    child: Mutex::new(Some(child)),
                    dir: Some(dir),
                    port,
                    socket,
                    client,
                    server: Box::new(command),
                    log,
                };
            }
            Err(e) => {
                last_error = e;
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    panic!("MariaDB did not start after 3 attempts: {last_error}");
}

/// The client as root over the server's Unix socket (root@localhost, no password).
fn admin_client(client: &Path, socket: &Path) -> Command {
    let mut cmd = Command::new(client);
    cmd.args(["--no-defaults", "--protocol=socket", "-u", "root"])
        .arg(format!("--socket={}", socket.display()));
    cmd
}

fn wait_ready(child: &mut Child, client: &Path, socket: &Path, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "mariadbd exited ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ));
        }
        let ok = admin_client(client, socket)
            .args(["-e", "SELECT 1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "not ready after {READY_TIMEOUT:?}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mysql_user_ids() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").arg(flag).arg("mysql").output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// Kills and deletes servers left behind by test processes that died.
fn sweep_stale() {
    for dir in crate::orphaned_temp_dirs(TMP_PREFIX) {
        if let Some(pid) = std::fs::read_to_string(dir.join("mysqld.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).output();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `(scheme, userinfo, host:port)` of a URL.
fn authority(url: &str) -> (String, Option<String>, String) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("mysql", url));
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    match authority.rsplit_once('@') {
        Some((u, h)) => (scheme.to_owned(), Some(u.to_owned()), h.to_owned()),
        None => (scheme.to_owned(), None, authority.to_owned()),
    }
}
