//! The systemd notifications over a real datagram socket. `NOTIFY_SOCKET` is process-wide,
//! so this file holds a single test and runs as its own process.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use cfgroups::daemon::systemd;

fn receive(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a notification datagram");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn notifications_reach_the_socket_and_are_no_ops_without_one() {
    // SAFETY: the only test in this binary, so no other thread reads the environment.
    unsafe {
        std::env::remove_var("NOTIFY_SOCKET");
        std::env::set_var("WATCHDOG_USEC", "60000000");
        std::env::remove_var("WATCHDOG_PID");
    }
    // No socket: nothing to do, nothing fails, no watchdog to ping.
    systemd::notify_ready().unwrap();
    systemd::notify_watchdog().unwrap();
    assert_eq!(systemd::watchdog_interval(), None);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // SAFETY: as above.
    unsafe {
        std::env::set_var("NOTIFY_SOCKET", &path);
    }

    systemd::notify_ready().unwrap();
    assert_eq!(receive(&socket), "READY=1\n");
    systemd::notify_status("reconciled 2 accounts\nin sync").unwrap();
    assert_eq!(receive(&socket), "STATUS=reconciled 2 accounts in sync\n");
    systemd::notify_watchdog().unwrap();
    assert_eq!(receive(&socket), "WATCHDOG=1\n");
    systemd::notify_stopping().unwrap();
    assert_eq!(receive(&socket), "STOPPING=1\n");

    assert_eq!(systemd::watchdog_interval(), Some(Duration::from_secs(30)));
    // SAFETY: as above.
    unsafe {
        std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
    }
    assert_eq!(systemd::watchdog_interval(), Some(Duration::from_secs(30)));
    // SAFETY: as above.
    unsafe {
        std::env::set_var("WATCHDOG_PID", "1");
    }
    assert_eq!(systemd::watchdog_interval(), None);

    // A socket that is gone is an error the caller can log.
    drop(socket);
    std::fs::remove_file(&path).unwrap();
    assert!(systemd::notify_ready().is_err());
}
