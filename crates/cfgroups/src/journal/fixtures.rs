//! Records for the journal's unit tests.

use super::record::{Record, backup_sha256, now};
use crate::model::{AccountId, DeletionOutcome, ObservedGroup};

/// Policies as the list endpoint returns them (the API reference's example, both `scope`
/// shapes), compact as Cloudflare sends them.
pub const REAL_SHAPED_POLICIES: &str = concat!(
    r#"[{"id":"64409ddbb45f51c3bd65693b3d0840fb","access":"allow","permission_groups":"#,
    r#"[{"id":"05880cd1bdc24d8bae6be2c6a5f4e1ff","name":"Account Settings Read","meta":"#,
    r#"{"label":"account_settings_read","scopes":"com.cloudflare.api.account"}}],"#,
    r#""resource_groups":[{"id":"0c2282666be49ee714186ebf9a8137e9","name":"Comptes Zürich","#,
    r#""scope":{"key":"com.cloudflare.api.account.023e105f4ecef8ad9ca31a8372d0c353","#,
    r#""objects":[{"key":"*"}]}}]},{"id":"7ab366023a782ebb205bc308119b4fe5","access":"deny","#,
    r#""permission_groups":[{"id":"3030687196b94b638145a3953da2b699","name":"DNS Write","#,
    r#""meta":{"label":"dns_write","scopes":"com.cloudflare.api.account.zone"}}],"#,
    r#""resource_groups":[{"id":"7db224cb98b20411e7a28cbdd2df2c20","scope":[{"key":"#,
    r#""com.cloudflare.api.account.zone.7a2b6c1d0e9f8a7b6c5d4e3f2a1b0c9d","objects":"#,
    r#"[{"key":"*"}]}]}]}]"#
);

pub fn group(n: u8) -> ObservedGroup {
    ObservedGroup {
        id: format!("{n:032x}").parse().unwrap(),
        name: format!("group {n}"),
        created_on: Some("2024-03-01T12:21:02Z".into()),
        modified_on: None,
        policies: Some(
            serde_json::value::RawValue::from_string(REAL_SHAPED_POLICIES.to_owned()).unwrap(),
        ),
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
