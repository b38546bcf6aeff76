//! Fuzzes what the API client does with a response body: the envelope parser, then the
//! pager's checks of a list page against `result_info`.
#![no_main]

use cfgroups::cloudflare::Envelope;
use cfgroups::cloudflare::pager::Pager;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = serde_json::from_slice::<Envelope>(data) else {
        return;
    };
    let items = envelope
        .result
        .as_ref()
        .and_then(|r| r.as_array())
        .cloned()
        .unwrap_or_default();
    let ids = items.iter().map(|item| item.get("id").and_then(|id| id.as_str()));
    let mut pager = Pager::new(500);
    let _ = pager.accept(ids, envelope.result_info.clone());
});
