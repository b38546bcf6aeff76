//! Fuzzes the desired-state loader and the planner together. The input is a desired-state
//! file and a listing: any bytes either load into a validated state or give errors (never a
//! panic, a hang or a blow-up), and for any state that loads and any listing, every planned
//! deletion is one the design's rules allow (judged by the test kit's independent oracle)
//! and no account plans more than its `max_deletes`.
#![no_main]

#[path = "../../crates/testkit/src/oracle.rs"]
mod oracle;

use std::path::Path;

use cfgroups::model::{Observed, ObservedGroup};
use cfgroups::plan::{PlanOptions, plan};
use libfuzzer_sys::fuzz_target;

/// Names a listing can use besides the declared ones.
const OTHER_NAMES: [&str; 3] = ["alpha", "SCIM-x", "Contractors "];

fuzz_target!(|data: &[u8]| {
    let (Some(&[hi, lo]), rest) = (
        data.get(..2).map(|b| [b[0], b[1]]).as_ref(),
        data.get(2..).unwrap_or_default(),
    ) else {
        return;
    };
    let split = usize::from(u16::from_be_bytes([hi, lo])).min(rest.len());
    let (config, listing) = rest.split_at(split);
    let Ok(text) = std::str::from_utf8(config) else {
        return;
    };
    let desired = match cfgroups::config::parse(text, Path::new("fuzz.yaml")) {
        Ok(desired) => desired,
        Err(errors) => {
            assert!(!errors.0.is_empty());
            return;
        }
    };
    // The listing: two bytes a group (an id byte, a name choice), the first bit of the
    // first byte failing the first account's listing.
    let fail_first = listing.first().is_some_and(|b| b & 0x80 != 0);
    let mut observed = Observed::new();
    for (index, account) in desired.accounts.iter().enumerate() {
        let mut names: Vec<String> = account
            .groups
            .iter()
            .filter_map(|g| g.name.clone())
            .collect();
        names.extend(OTHER_NAMES.iter().map(|n| n.to_string()));
        let mut live: Vec<ObservedGroup> = Vec::new();
        for pair in listing.chunks_exact(2) {
            let id = account
                .groups
                .iter()
                .filter_map(|g| g.id.clone())
                .nth(usize::from(pair[0] % 4))
                .unwrap_or_else(|| format!("{:032x}", pair[0]).parse().expect("hex id"));
            if live.iter().any(|g| g.id == id) {
                continue;
            }
            let name = names[usize::from(pair[1]) % names.len()].clone();
            live.push(ObservedGroup {
                id,
                name,
                created_on: None,
                modified_on: None,
                policies: None,
            });
        }
        let listing = if index == 0 && fail_first {
            Err(cfgroups::model::ListingFailure::new("fuzz".to_owned()))
        } else {
            Ok(live)
        };
        observed.insert(account.id.clone(), listing);
    }

    let planned = plan(&desired, &observed, PlanOptions::default());
    for (account, account_plan) in desired.accounts.iter().zip(&planned.accounts) {
        let live: &[ObservedGroup] = match observed.get(&account.id) {
            Some(Ok(live)) => live,
            _ => &[],
        };
        let world = oracle::World {
            declared: &account.groups,
            live,
            unmanaged: account.unmanaged,
            protect: account.protect.patterns(),
            listed: matches!(observed.get(&account.id), Some(Ok(_))),
            suspended: account.suspended.is_some(),
        };
        let deletions: Vec<&ObservedGroup> = account_plan
            .items
            .iter()
            .filter(|i| i.action == cfgroups::plan::Action::Delete)
            .filter_map(|i| i.observed.as_ref())
            .collect();
        assert!(
            deletions.len() <= account.max_deletes as usize,
            "over max_deletes"
        );
        if !oracle::judgeable(world.protect) {
            continue;
        }
        for group in deletions {
            if let Some(why) = oracle::forbidden(&world, group) {
                panic!(
                    "{:?} ({}) planned for deletion although {why}",
                    group.name, group.id
                );
            }
        }
    }
});
