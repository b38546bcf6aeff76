//! Several `cfgroups run` replicas sharing one config, one token and one lock, against the
//! fake Cloudflare API: starting, stopping, killing and freezing them, finding the leader
//! from their metrics, and reading which replica sent each request (the `User-Agent` names
//! it) from the fake's log.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cfgroups_fake::{FakeCloudflare, FakeState, Method, RequestRecord};
use testkit::daemon::{Daemon, DaemonOptions, metric};
use testkit::{
    AccountConfig, Signal, WAIT, account, config_text, group, group_id, within, write_by_rename,
};

/// The account every replica manages.
pub const ACCOUNT: usize = 1;

/// Groups in the account; group `n` is named `Group NN`.
pub const GROUPS: usize = 30;

pub fn group_name(n: usize) -> String {
    format!("Group {n:02}")
}

/// Where the lock lives, as the replicas are told.
#[derive(Debug, Clone)]
pub enum Lock {
    Etcd { endpoint: String },
    Kubernetes { kubeconfig: PathBuf },
}

/// Timing for tests (the rest of it: a 2 s renew deadline): a 3 s lease, retries every 200 ms.
pub const LEASE: Duration = Duration::from_secs(3);
pub const RETRY: Duration = Duration::from_millis(200);

/// A replica's state: running (maybe frozen), or stopped.
pub struct Replica {
    pub name: String,
    pub state_dir: PathBuf,
    pub daemon: Option<Daemon>,
    pub frozen: bool,
}

pub struct Replicas {
    pub fake: FakeCloudflare,
    pub lock: Lock,
    /// Holds the config and the state directories.
    _dir: tempfile::TempDir,
    config: PathBuf,
    pub replicas: Vec<Replica>,
    /// Groups declared absent so far.
    pub absent: Vec<usize>,
    /// `--lease-duration`, `--renew-deadline`, `--retry-period` of every replica.
    timing: [String; 3],
}

impl Replicas {
    /// `count` replicas (not started) on a fresh fake holding [`GROUPS`] groups, all declared
    /// present.
    pub async fn new(lock: Lock, count: usize) -> Replicas {
        let mut state = FakeState::new().with_account(account(ACCOUNT).as_str());
        for n in 0..GROUPS {
            state = state.with_group(
                account(ACCOUNT).as_str(),
                group(ACCOUNT, n, &group_name(n), 1),
            );
        }
        let fake = testkit::start_fake(state).await;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config_dir = dir.path().join("config");
        std::fs::create_dir_all(&config_dir).expect("the config directory");
        let config = config_dir.join("groups.yaml");
        let replicas = (0..count)
            .map(|i| {
                let name = format!("replica-{}", (b'a' + i as u8) as char);
                let state_dir = dir.path().join(&name);
                std::fs::create_dir_all(&state_dir).expect("a state directory");
                Replica {
                    name,
                    state_dir,
                    daemon: None,
                    frozen: false,
                }
            })
            .collect();
        let replicas = Replicas {
            fake,
            lock,
            _dir: dir,
            config,
            replicas,
            absent: Vec::new(),
            timing: ["3s".into(), "2s".into(), "200ms".into()],
        };
        replicas.write_config();
        replicas
    }

    /// The same, with another lease timing for every replica.
    pub fn with_timing(mut self, lease: &str, renew_deadline: &str, retry: &str) -> Self {
        self.timing = [
            lease.to_owned(),
            renew_deadline.to_owned(),
            retry.to_owned(),
        ];
        self
    }

    fn write_config(&self) {
        let mut account_config = AccountConfig::new(account(ACCOUNT)).max_deletes(GROUPS as u32);
        for n in 0..GROUPS {
            let state = if self.absent.contains(&n) {
                "absent"
            } else {
                "present"
            };
            account_config = account_config.declare(&group_name(n), state);
        }
        write_by_rename(&self.config, &config_text(&[account_config]));
    }

    /// Declares group `n` absent, from now on.
    pub fn mark_absent(&mut self, n: usize) {
        self.absent.push(n);
        self.write_config();
    }

    /// The `run` flags of replica `i`.
    fn args(&self, i: usize) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--identity".into(),
            self.replicas[i].name.clone(),
            "--lease-duration".into(),
            self.timing[0].clone(),
            "--renew-deadline".into(),
            self.timing[1].clone(),
            "--retry-period".into(),
            self.timing[2].clone(),
            "--debounce".into(),
            "50ms".into(),
        ];
        match &self.lock {
            Lock::Etcd { endpoint } => args.extend([
                "--leader-election".into(),
                "etcd".into(),
                "--etcd-endpoints".into(),
                endpoint.clone(),
            ]),
            Lock::Kubernetes { .. } => args.extend([
                "--leader-election".into(),
                "kubernetes".into(),
                "--lease-namespace".into(),
                "cfgroups".into(),
            ]),
        }
        args
    }

    /// Starts (or restarts) replica `i`, with its own state directory.
    pub async fn start(&mut self, i: usize) {
        let mut options = DaemonOptions::new(&self.config, &self.replicas[i].state_dir, &self.fake)
            .args(self.args(i));
        if let Lock::Kubernetes { kubeconfig } = &self.lock {
            options = options.env("KUBECONFIG", &kubeconfig.display().to_string());
        }
        self.replicas[i].daemon = Some(options.start().await);
        self.replicas[i].frozen = false;
    }

    pub async fn start_all(&mut self) {
        for i in 0..self.replicas.len() {
            self.start(i).await;
        }
    }

    pub fn daemon(&self, i: usize) -> &Daemon {
        self.replicas[i].daemon.as_ref().expect("a running replica")
    }

    /// `cfgroups_leader` of every running, unfrozen replica: `(index, value)`.
    pub async fn leader_gauges(&self) -> Vec<(usize, f64)> {
        let mut gauges = Vec::new();
        for (i, replica) in self.replicas.iter().enumerate() {
            if let (Some(daemon), false) = (&replica.daemon, replica.frozen) {
                let text = daemon.metrics().await;
                gauges.push((i, metric(&text, "cfgroups_leader").unwrap_or(-1.0)));
            }
        }
        gauges
    }

    /// Waits until exactly one running replica reports itself the leader (and every other
    /// one a standby); its index.
    pub async fn leader(&self) -> usize {
        self.leader_within(WAIT).await.unwrap_or_else(|| {
            panic!(
                "no single leader within {WAIT:?}: {:?}",
                self.replicas
                    .iter()
                    .map(|r| r.name.clone())
                    .collect::<Vec<_>>()
            )
        })
    }

    pub async fn leader_within(&self, timeout: Duration) -> Option<usize> {
        within(timeout, async || {
            let gauges = self.leader_gauges().await;
            let leaders: Vec<usize> = gauges
                .iter()
                .filter(|(_, v)| *v == 1.0)
                .map(|(i, _)| *i)
                .collect();
            let standbys = gauges.iter().filter(|(_, v)| *v == 0.0).count();
            match leaders.as_slice() {
                [one] if standbys + 1 == gauges.len() => Some(*one),
                _ => None,
            }
        })
        .await
    }

    /// SIGTERM to replica `i`, waiting for it to exit 0.
    pub async fn terminate(&mut self, i: usize) {
        let mut daemon = self.replicas[i].daemon.take().expect("a running replica");
        daemon.signal(Signal::SIGTERM);
        let status = daemon
            .wait_exit(WAIT)
            .await
            .expect("the replica exits on SIGTERM");
        assert!(status.success(), "exit {status}:\n{}", daemon.log.text());
    }

    /// SIGKILL to replica `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(daemon) = self.replicas[i].daemon.take() {
            daemon.kill();
        }
    }

    /// SIGSTOP / SIGCONT to replica `i`.
    pub fn freeze(&mut self, i: usize) {
        self.daemon(i).signal(Signal::SIGSTOP);
        self.replicas[i].frozen = true;
    }

    pub fn thaw(&mut self, i: usize) {
        self.daemon(i).signal(Signal::SIGCONT);
        self.replicas[i].frozen = false;
    }

    /// Every request the fake has seen.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.fake.requests().log().to_vec()
    }

    /// Waits until group `n`'s DELETE was answered 200; when it arrived.
    pub async fn wait_deleted(&self, n: usize) -> Instant {
        let id = group_id(ACCOUNT, n);
        testkit::daemon::wait_deleted(&self.fake, &account(ACCOUNT), id.as_str()).await;
        self.requests()
            .iter()
            .find(|r| {
                r.method == Method::DELETE && r.path.ends_with(id.as_str()) && r.status == Some(200)
            })
            .map(|r| r.at)
            .expect("the DELETE is logged")
    }

    /// The groups the fake still lists.
    pub fn remaining(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .fake
            .groups(account(ACCOUNT).as_str())
            .iter()
            .map(|g| g.name.clone())
            .collect();
        names.sort();
        names
    }

    pub fn expected_remaining(&self) -> Vec<String> {
        let mut names: Vec<String> = (0..GROUPS)
            .filter(|n| !self.absent.contains(n))
            .map(group_name)
            .collect();
        names.sort();
        names
    }
}

/// The replica a request names in its `User-Agent` (`cfgroups/x.y.z (replica NAME)`).
pub fn sender(record: &RequestRecord) -> Option<String> {
    let agent = record.user_agent.as_deref()?;
    let rest = agent.split("(replica ").nth(1)?;
    Some(rest.trim_end_matches(')').to_owned())
}
