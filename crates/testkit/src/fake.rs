//! The fake Cloudflare API as the tests start it: with the test token, reproducible ids and a
//! rate limit that never bites (tests about the limit set their own), either on the test's
//! own runtime or, for synchronous tests that run the real binary against it, on a runtime
//! of its own.

use std::time::Duration;

use cfgroups_fake::{FakeCloudflare, FakeCloudflareBuilder, FakeState, Requests};

/// The token the fake accepts and every wired command sends. Distinctive, so a leak into any
/// output is found by searching for it.
pub const TOKEN: &str = "SECRET-TOKEN-b1f2c3";

/// The fake's builder with the test [`TOKEN`], group ids seeded for reproducible runs, and a
/// rate limit of a million requests a second.
pub fn fake() -> FakeCloudflareBuilder {
    FakeCloudflare::builder()
        .token(TOKEN)
        .rate_limit(1_000_000, Duration::from_secs(1))
        .seed(7)
}

/// Starts [`fake`] serving `state` on the current runtime, on a free loopback port.
pub async fn start_fake(state: FakeState) -> FakeCloudflare {
    fake()
        .state(state)
        .start()
        .await
        .expect("the fake API starts")
}

/// The fake served from a runtime of its own: synchronous tests can run the real binary
/// against it while it answers. Dereferences to the [`FakeCloudflare`]; dropping it shuts
/// the server down.
pub struct Fake {
    fake: Option<FakeCloudflare>,
    runtime: tokio::runtime::Runtime,
}

impl Fake {
    /// [`fake`] serving `state`.
    pub fn start(state: FakeState) -> Self {
        Self::start_with(fake().state(state))
    }

    /// Starts `builder` (usually [`fake`] with more settings).
    pub fn start_with(builder: FakeCloudflareBuilder) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let fake = runtime
            .block_on(builder.start())
            .expect("the fake API starts");
        Self {
            fake: Some(fake),
            runtime,
        }
    }

    /// Waits until the request accounting satisfies `condition`; panics after `timeout`.
    pub fn wait_for(&self, timeout: Duration, condition: impl Fn(&Requests) -> bool) -> Requests {
        self.runtime
            .block_on(self.wait_for_requests(timeout, condition))
            .expect("the fake never saw the expected requests")
    }

    /// Waits until every request that arrived has been answered (or abandoned).
    pub fn wait_idle(&self) {
        self.wait_for(Duration::from_secs(30), |r| r.log().len() == r.total());
    }
}

impl std::ops::Deref for Fake {
    type Target = FakeCloudflare;

    fn deref(&self) -> &FakeCloudflare {
        self.fake.as_ref().expect("the fake runs until dropped")
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        if let Some(fake) = self.fake.take() {
            self.runtime.block_on(fake.shutdown());
        }
    }
}
