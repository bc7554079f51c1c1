//! Child processes the suite can crash and restart: the service binaries, and the throwaway
//! Kafka, PostgreSQL and RabbitMQ servers started by `scripts/*-node.sh`. Each runs in a process
//! group of its own so a kill reaches everything it started (a server's workers, a script's JVM),
//! and its output goes to a log file named after it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How to start a process again after it was stopped.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
}

/// A running (or stopped) child process.
pub struct Process {
    pub name: String,
    launch: Launch,
    child: Option<Child>,
}

impl Process {
    pub fn spawn(name: &str, launch: Launch) -> Self {
        let mut p = Self {
            name: name.to_string(),
            launch,
            child: None,
        };
        p.start();
        p
    }

    /// Starts the process again with the same program, arguments and environment; its log is
    /// appended to.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let l = &self.launch;
        if let Some(dir) = l.log.parent() {
            std::fs::create_dir_all(dir).expect("log folder");
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&l.log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(&l.program)
            .args(&l.args)
            .envs(l.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", l.program.display()));
        self.child = Some(child);
    }

    /// `kill -9` of the whole process group, as a crash or a pulled plug would: no shutdown.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_group(child.id(), "KILL");
            let _ = child.wait();
        }
    }

    /// SIGTERM to the process and a wait for its exit, bounded by `patience` (then SIGKILL).
    /// Returns whether it exited cleanly.
    pub fn terminate(&mut self, patience: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + patience;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    signal_group(child.id(), "KILL");
                    return status.success();
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    signal_group(child.id(), "KILL");
                    let _ = child.wait();
                    return false;
                }
            }
        }
    }

    /// The exit status when the process ended by itself.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> &Path {
        &self.launch.log
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn signal_group(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}

/// A TCP port nothing listens on right now, below Linux's ephemeral range (32768 and up). A port
/// the kernel hands out for `:0` is ephemeral: once freed here, any outgoing connection (the
/// services make hundreds) can take it as its local port before the service binds it, and the
/// service then exits with "address already in use". Ports are tried in turn from a start of the
/// process's own, so tests running side by side are not handed the same one.
pub fn free_port() -> u16 {
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static START: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = *START.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        (std::process::id() ^ nanos) % COUNT
    });
    (0..COUNT)
        .map(|_| FIRST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % COUNT)
        .find(|port| TcpListener::bind(("127.0.0.1", *port as u16)).is_ok())
        .expect("a free loopback port between 20000 and 32000") as u16
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub async fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
