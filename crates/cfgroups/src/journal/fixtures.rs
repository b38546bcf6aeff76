//! Records for the journal's unit tests.

use super::record::{Record, now};
use crate::model::{AccountId, DeletionOutcome, ObservedGroup};

pub fn group(n: u8) -> ObservedGroup {
    ObservedGroup {
        id: format!("{n:032x}").parse().unwrap(),
        name: format!("group {n}"),
        created_on: Some("2024-03-01T12:21:02Z".into()),
        modified_on: None,
        policies: Some(serde_json::json!([{"access": "allow"}])),
    }
}

pub fn account() -> AccountId {
    "023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap()
}

pub fn intent(run: &str, n: u8) -> Record {
    Record::Intent {
        at: now(),
        run: run.into(),
        account: account(),
        group: group(n),
        members: Some(vec![
            serde_json::json!({"id": "m1", "email": "a@example.com"}),
        ]),
    }
}

pub fn outcome(run: &str, n: u8, outcome: DeletionOutcome) -> Record {
    Record::Outcome {
        at: now(),
        run: run.into(),
        account: account(),
        group_id: group(n).id,
        outcome,
    }
}
