//! The systemd notifications over a real datagram socket. `NOTIFY_SOCKET` and the watchdog
//! variables are read from the process environment, so each step of the test runs in a
//! process of its own: this test binary again, filtered to this one test, with the step's
//! environment set from the start. Nothing here changes the environment of a running
//! process.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cfgroups::daemon::systemd;

/// Names the step a re-run of this test carries out; unset in the test as the harness runs
/// it.
const STEP: &str = "CFGROUPS_TEST_SYSTEMD_STEP";

/// The steps, each with the environment it needs.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// No socket: nothing to do, nothing fails, no watchdog to ping.
    NoSocket,
    /// Every message reaches the socket; the watchdog is on for any process.
    Socket,
    /// `WATCHDOG_PID` names this process: the watchdog is on.
    WatchdogForThisProcess,
    /// `WATCHDOG_PID` names another process: the watchdog is off.
    WatchdogForAnother,
    /// The socket is gone: sending is an error the caller can log.
    SocketGone,
}

impl Step {
    const ALL: [Step; 5] = [
        Step::NoSocket,
        Step::Socket,
        Step::WatchdogForThisProcess,
        Step::WatchdogForAnother,
        Step::SocketGone,
    ];

    fn name(self) -> String {
        format!("{self:?}")
    }

    /// What this step checks, in its own process.
    fn check(self) {
        match self {
            Step::NoSocket => {
                systemd::notify_ready().unwrap();
                systemd::notify_watchdog().unwrap();
                assert_eq!(systemd::watchdog_interval(), None);
            }
            Step::Socket => {
                systemd::notify_ready().unwrap();
                systemd::notify_status("reconciled 2 accounts\nin sync").unwrap();
                systemd::notify_watchdog().unwrap();
                systemd::notify_stopping().unwrap();
                assert_eq!(systemd::watchdog_interval(), Some(Duration::from_secs(30)));
            }
            Step::WatchdogForThisProcess => {
                assert_eq!(
                    std::env::var("WATCHDOG_PID").unwrap(),
                    std::process::id().to_string()
                );
                assert_eq!(systemd::watchdog_interval(), Some(Duration::from_secs(30)));
            }
            Step::WatchdogForAnother => {
                assert_eq!(systemd::watchdog_interval(), None);
            }
            Step::SocketGone => assert!(systemd::notify_ready().is_err()),
        }
    }

    /// This test binary, filtered to this test, to carry out the step with `socket` as
    /// `NOTIFY_SOCKET` (unless the step has none) and a 60 s watchdog.
    fn command(self, socket: &Path) -> Command {
        let test = concat!(
            module_path!(),
            "::",
            "notifications_reach_the_socket_and_are_no_ops_without_one"
        );
        // The harness names tests without the crate: `systemd_notify::...`.
        let test = test.split_once("::").map_or(test, |(_, rest)| rest);
        let exe = std::env::current_exe().unwrap();
        let harness = ["--exact", test, "--test-threads", "1", "--nocapture"];
        let mut cmd = match self {
            // `WATCHDOG_PID` must be the pid of the process that reads it: the shell's, which
            // `exec` hands on to the test binary.
            Step::WatchdogForThisProcess => {
                let mut cmd = Command::new("sh");
                cmd.args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\""])
                    .arg(exe)
                    .args(harness);
                cmd
            }
            _ => {
                let mut cmd = Command::new(exe);
                cmd.args(harness);
                cmd
            }
        };
        cmd.env(STEP, self.name())
            .env("WATCHDOG_USEC", "60000000")
            .env_remove("WATCHDOG_PID")
            .env_remove("NOTIFY_SOCKET");
        match self {
            Step::NoSocket => {}
            Step::WatchdogForAnother => {
                cmd.env("NOTIFY_SOCKET", socket).env("WATCHDOG_PID", "1");
            }
            _ => {
                cmd.env("NOTIFY_SOCKET", socket);
            }
        }
        cmd
    }

    /// Runs the step in a process of its own; panics with its output when it fails.
    fn run(self, socket: &Path) {
        let output = self.command(socket).output().unwrap();
        assert!(
            output.status.success(),
            "step {self:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn receive(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a notification datagram");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn notifications_reach_the_socket_and_are_no_ops_without_one() {
    if let Ok(step) = std::env::var(STEP) {
        let step = Step::ALL
            .into_iter()
            .find(|s| s.name() == step)
            .unwrap_or_else(|| panic!("no step {step}"));
        step.check();
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    Step::NoSocket.run(&path);
    Step::Socket.run(&path);
    assert_eq!(receive(&socket), "READY=1\n");
    assert_eq!(receive(&socket), "STATUS=reconciled 2 accounts in sync\n");
    assert_eq!(receive(&socket), "WATCHDOG=1\n");
    assert_eq!(receive(&socket), "STOPPING=1\n");
    Step::WatchdogForThisProcess.run(&path);
    Step::WatchdogForAnother.run(&path);

    drop(socket);
    std::fs::remove_file(&path).unwrap();
    Step::SocketGone.run(&path);
}
