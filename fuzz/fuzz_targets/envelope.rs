//! Fuzzes what the API client does with list pages: the envelope parser, then the pager's
//! checks across a listing of several pages. The input is up to eight response bodies
//! separated by 0xFF bytes. Whatever they hold, the pager may only call a listing complete
//! when it is consistent: no item id twice, every page's `total_count` the same, and as many
//! items as that total.
#![no_main]

use std::collections::HashSet;

use cfgroups::cloudflare::Envelope;
use cfgroups::cloudflare::pager::{Next, Pager};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut pager = Pager::new(3);
    let mut ids: Vec<Option<String>> = Vec::new();
    let mut totals: HashSet<u64> = HashSet::new();
    for body in data.split(|b| *b == 0xFF).take(8) {
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
        if let Some(total) = envelope
            .result_info
            .as_ref()
            .and_then(|info| info.total_count)
        {
            totals.insert(total);
        }
        let accepted = pager.accept(
            page_ids.iter().map(Option::as_deref),
            envelope.result_info.clone(),
        );
        ids.extend(page_ids);
        match accepted {
            Err(_) => return,
            Ok(Next::Page(_)) => continue,
            Ok(Next::Done) => {
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
    }
});
