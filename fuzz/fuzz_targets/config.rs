//! Fuzzes the desired-state loader: any bytes either load into a validated state that
//! plans without panicking, or give errors — never a panic, a hang or a blow-up.
#![no_main]

use std::path::Path;

use cfgroups::plan::{PlanOptions, plan};
use cfgroups::model::Observed;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match cfgroups::config::parse(text, Path::new("fuzz.yaml")) {
        Ok(desired) => {
            let plan = plan(&desired, &Observed::new(), PlanOptions::default());
            assert_eq!(plan.deletions().count(), 0, "nothing listed, nothing to delete");
        }
        Err(errors) => assert!(!errors.0.is_empty()),
    }
});
