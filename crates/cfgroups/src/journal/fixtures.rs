//! Records for the journal's unit tests.

use super::record::{Record, backup_sha256, now};
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
    let members = Some(vec![
        serde_json::json!({"id": "m1", "email": "a@example.com"}),
    ]);
    Record::Intent {
        at: now(),
        run: run.into(),
        account: account(),
        backup_sha256: Some(backup_sha256(&group(n), members.as_ref())),
        group: group(n),
        members,
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
