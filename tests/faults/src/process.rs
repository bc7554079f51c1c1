//! Child processes the suite can crash and restart: the service binaries, and the throwaway
//! Kafka, PostgreSQL and RabbitMQ servers started by `scripts/*-node.sh`. Each runs in a process
//! group of its own so a kill reaches everything it started (a server's workers, a script's JVM),
//! and its output goes to a log file named after it.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

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
