//! Fuzzes what the API client does with list pages: the envelope parser, then the pager's
//! checks across a listing of several pages. The input is up to eight response bodies
//! separated by 0xFF bytes, taken as the client takes them: one page after another, and,
//! once page 1 names every page, the rest in any order (a body answers the page its own
//! `result_info.page` names when that page is still to come, else the lowest one), then
//! `finish`. Whatever the bodies hold, the pager may only call a listing complete when it is
//! consistent: no item id twice, every page's `total_count` the same, and as many items as
//! that total.
#![no_main]

use std::collections::{BTreeSet, HashSet};

use cfgroups::cloudflare::Envelope;
use cfgroups::cloudflare::pager::{Next, Pager};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bodies: Vec<&[u8]> = data.split(|b| *b == 0xFF).take(8).collect();
    let mut pager = Pager::new(3);
    let mut ids: Vec<Option<String>> = Vec::new();
    let mut totals: HashSet<u64> = HashSet::new();
    // The page the next body answers while pages come one after another.
    let mut next_page = 1u64;
    // The pages still to come once they were asked for together.
    let mut pending: Option<BTreeSet<u64>> = None;
    for (index, body) in bodies.iter().enumerate() {
        let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else {
            return;
        };
        let items = envelope
            .result
            .as_ref()
            .and_then(|r| r.as_array())
            .cloned()
            .unwrap_or_default();
        let page_ids: Vec<Option<String>> = items
            .iter()
            .map(|item| item.get("id").and_then(|id| id.as_str()).map(str::to_owned))
            .collect();
        let info = envelope.result_info;
        if let Some(total) = info.and_then(|info| info.total_count) {
            totals.insert(total);
        }
        let page = match pending.as_mut() {
            None => next_page,
            Some(pending) => {
                let page = info
                    .and_then(|info| info.page)
                    .filter(|page| pending.contains(page))
                    .or_else(|| pending.first().copied())
                    .expect("a page still to come");
                pending.remove(&page);
                page
            }
        };
        let accepted = pager.accept(page, page_ids.iter().map(Option::as_deref), info);
        ids.extend(page_ids);
        let complete = match (accepted, pending.as_ref()) {
            (Err(_), _) => return,
            // One after another.
            (Ok(Next::Done), None) => true,
            (Ok(Next::Page(following)), None) => {
                next_page = following;
                false
            }
            (Ok(Next::Pages(rest)), None) => {
                // More pages than bodies left: the listing cannot complete.
                let left = bodies.len() - index - 1;
                if rest.clone().count() > left {
                    return;
                }
                pending = Some(rest.collect());
                false
            }
            // The client refuses a page in order that leaves others pending.
            (Ok(Next::Pending), None) => return,
            // Together: every page asked for is in, then `finish` judges the whole.
            (Ok(_), Some(pending)) if pending.is_empty() => pager.finish().is_ok(),
            (Ok(_), Some(_)) => false,
        };
        if complete {
            let named: Vec<&String> = ids.iter().flatten().collect();
            let unique: HashSet<&String> = named.iter().copied().collect();
            assert_eq!(unique.len(), named.len(), "complete listing repeats an id");
            assert!(totals.len() <= 1, "complete listing with totals {totals:?}");
            if let Some(total) = totals.iter().next() {
                assert_eq!(
                    ids.len() as u64,
                    *total,
                    "complete listing short of its total"
                );
            }
            return;
        }
    }
});
