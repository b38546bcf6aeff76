//! A real etcd for tests: Debian's `etcd-server` binary started on loopback ports picked
//! free (etcd cannot bind port 0: ports are found by binding 0 and releasing, with a retry
//! on a clash), with a temporary data directory, stopped when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long etcd may take to answer its health check after starting.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running single-member etcd.
pub struct Etcd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
}

/// The etcd binary: `etcd` on PATH, else /usr/bin/etcd. Fails loudly when missing: CI
/// installs it (`.ci/run`), and a test that silently passed without it would prove nothing.
pub fn binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("etcd"))
            .find(|candidate| candidate.is_file())
    });
    on_path
        .or_else(|| Some(PathBuf::from("/usr/bin/etcd")).filter(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!(
                "etcd is not installed: these tests need a real etcd. Install Debian's \
                 etcd-server package (apt-get install etcd-server); .ci/run does."
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Etcd {
    /// Starts etcd on fresh ports and waits until it is healthy.
    pub fn start() -> Etcd {
        let mut dir = tempfile::tempdir().expect("a temporary directory");
        let mut last_log = String::new();
        for _ in 0..5 {
            let mut etcd = Etcd {
                child: None,
                dir,
                client_port: free_port(),
                peer_port: free_port(),
            };
            if etcd.client_port == etcd.peer_port {
                dir = etcd.into_dir();
                continue;
            }
            match etcd.spawn() {
                Ok(()) => return etcd,
                Err(log) => {
                    last_log = log;
                    dir = etcd.into_dir();
                    let _ = std::fs::remove_dir_all(dir.path().join("data"));
                }
            }
        }
        panic!("etcd did not start after 5 tries; last log:\n{last_log}");
    }

    fn into_dir(mut self) -> tempfile::TempDir {
        self.kill();
        let placeholder = tempfile::tempdir().expect("a temporary directory");
        std::mem::replace(&mut self.dir, placeholder)
    }

    /// The client URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// Starts the process on this instance's ports and data directory; the log on failure.
    fn spawn(&mut self) -> Result<(), String> {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("the etcd log file");
        let child = Command::new(binary())
            .arg("--name=test")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=test={peer}"))
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the etcd log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary().display()));
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!("exited with {status}:\n{}", self.log()));
            }
            if healthy(self.client_port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = self.log();
        self.kill();
        Err(format!("not healthy within {START_TIMEOUT:?}:\n{log}"))
    }

    /// etcd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Stops etcd (SIGKILL: an outage, not a goodbye), keeping its data.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts it again on the same ports with the same data.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(log) = self.spawn() {
            panic!("etcd did not restart: {log}");
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether etcd on `port` answers `/health` with `"health":"true"`.
fn healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}
