//! What the benches set up: accounts of real-shaped groups from the fake's generator with a
//! share of them declared absent, a second client spending requests of the same token beside
//! the binary, and the least time a request count takes under a window limit. Measuring and
//! judging is [`crate::measure`]'s.

use std::time::Duration;

use cfgroups::model::AccountId;
use cfgroups_fake::FakeState;

use crate::config::{AccountConfig, account};
use crate::fake::TOKEN;

/// What a second client's requests got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spent {
    pub ok: usize,
    pub rate_limited: usize,
    pub other: usize,
}

/// Another tool using the same token: `requests` list requests for `account` at `base_url`,
/// `at_once` at a time, as fast as the server answers, on a thread of its own. Join the
/// handle for what they got.
pub fn spend(
    base_url: String,
    account: AccountId,
    requests: usize,
    at_once: usize,
) -> std::thread::JoinHandle<Spent> {
    std::thread::spawn(move || {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the second client");
        runtime.block_on(async move {
            let http = reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("an HTTP client");
            let url = format!("{base_url}/accounts/{account}/iam/user_groups?per_page=1");
            let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for _ in 0..at_once {
                let (http, url, next) = (http.clone(), url.clone(), next.clone());
                tasks.push(tokio::spawn(async move {
                    let mut spent = Spent::default();
                    while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < requests {
                        match http.get(&url).bearer_auth(TOKEN).send().await {
                            Ok(r) if r.status().is_success() => spent.ok += 1,
                            Ok(r) if r.status().as_u16() == 429 => spent.rate_limited += 1,
                            _ => spent.other += 1,
                        }
                    }
                    spent
                }));
            }
            let mut total = Spent::default();
            for task in tasks {
                let spent = task.await.unwrap_or_default();
                total.ok += spent.ok;
                total.rate_limited += spent.rate_limited;
                total.other += spent.other;
            }
            total
        })
    })
}

/// `accounts` accounts of `groups` real-shaped groups each, the first `absent` of each
/// declared absent by name and the rest left unmanaged (reported, never deleted).
/// `max_deletes` is raised to `absent` so a mass cleanup is not blocked.
pub fn generated(
    accounts: usize,
    groups: usize,
    absent: usize,
) -> (FakeState, Vec<AccountConfig>, Vec<AccountId>) {
    let ids: Vec<AccountId> = (0..accounts).map(account).collect();
    let mut state = FakeState::new();
    let mut configs = Vec::new();
    for (seed, id) in (0u64..).zip(&ids) {
        state = state.with_real_shaped_groups(id, groups, 1_000 + seed);
        let config = state.groups(id).iter().take(absent).fold(
            AccountConfig::new(id.clone())
                .max_deletes(u32::try_from(absent.max(1)).unwrap_or(u32::MAX)),
            |config, group| config.absent(&group.name),
        );
        configs.push(config);
    }
    (state, configs, ids)
}

/// `(ceil(requests / limit) - 1) * window`: the least time `requests` take from the first
/// to the last under at most `limit` in any rolling `window`.
pub fn window_bound(requests: usize, limit: usize, window: Duration) -> Duration {
    let windows = requests.div_ceil(limit.max(1)).saturating_sub(1);
    window * u32::try_from(windows).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_bound_counts_the_windows_after_the_first() {
        let window = Duration::from_secs(30);
        assert_eq!(window_bound(1000, 1000, window), Duration::ZERO);
        assert_eq!(window_bound(1001, 1000, window), window);
        assert_eq!(window_bound(6310, 1000, window), window * 6);
    }

    #[test]
    fn generated_accounts_declare_the_first_groups_absent() {
        let (state, configs, ids) = generated(2, 10, 3);
        assert_eq!(ids.len(), 2);
        assert_eq!(state.groups(&ids[1]).len(), 10);
        assert_eq!(configs[0].groups.len(), 3);
        let third = &state.groups(&ids[0])[2].name;
        assert_eq!(configs[0].groups[2].0.as_deref(), Some(third.as_str()));
    }
}
