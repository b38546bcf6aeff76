//! Real-shaped user groups, made up deterministically from a seed: what benchmarks and
//! fixtures list, so that they measure groups as Cloudflare returns them rather than empty
//! shells.
//!
//! Each group follows the API reference's example object: 0-3 policies (`allow` or `deny`),
//! each with permission groups (`id`, `name`, `meta`) and resource groups whose `scope` comes
//! in both documented shapes (an object `{key, objects}`, or a list of them), now and then a
//! field the documentation does not name (the API adds fields during its beta), and 0-5
//! members drawn from a pool shared by the account's groups. Names have spaces, and some
//! have letters outside ASCII; the index at the end keeps them unique within the account.

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::ids::Id;
use crate::state::{FakeGroup, FakeMember, json_text};

/// Team names: with spaces, some beyond ASCII.
const TEAMS: &[&str] = &[
    "Finance Auditors",
    "Platform Engineering",
    "Équipe Sécurité",
    "Support Zürich",
    "Site Reliability",
    "東京 オペレーション",
    "Développeurs Web",
    "São Paulo Sales",
    "Read Only Auditors",
    "Incident Response",
    "Ñandú Labs",
    "Data Science",
    "Contractors 2024",
    "Marketing Analytics",
    "Kraków Backoffice",
    "Growth",
];

/// Permission groups: name, `meta.label`, `meta.scopes`.
const PERMISSION_GROUPS: &[(&str, &str, &str)] = &[
    (
        "Account Settings Read",
        "account_settings_read",
        "com.cloudflare.api.account",
    ),
    (
        "Account Settings Write",
        "account_settings_write",
        "com.cloudflare.api.account",
    ),
    ("DNS Write", "dns_write", "com.cloudflare.api.account.zone"),
    ("DNS Read", "dns_read", "com.cloudflare.api.account.zone"),
    ("Zone Read", "zone_read", "com.cloudflare.api.account.zone"),
    (
        "Firewall Services Write",
        "firewall_services_write",
        "com.cloudflare.api.account.zone",
    ),
    (
        "Workers Scripts Write",
        "workers_scripts_write",
        "com.cloudflare.api.account",
    ),
    (
        "Analytics Read",
        "analytics_read",
        "com.cloudflare.api.account",
    ),
    ("Billing Read", "billing_read", "com.cloudflare.api.account"),
    (
        "Access: Apps and Policies Write",
        "access_apps_and_policies_write",
        "com.cloudflare.api.account",
    ),
];

/// Members per account the groups draw theirs from.
const MEMBER_POOL: usize = 40;

/// Makes up one account's groups and its member pool, from one seed.
pub(crate) struct Generator<'a> {
    account: &'a str,
    rng: fastrand::Rng,
    members: Vec<FakeMember>,
}

impl<'a> Generator<'a> {
    pub(crate) fn new(account: &'a str, seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let members = (0..MEMBER_POOL)
            .map(|n| {
                let id = Id::random(&mut rng).into_string();
                let tag = account.get(..6).unwrap_or(account);
                FakeMember::new(id, format!("user{n:02}.{tag}@example.com"))
            })
            .collect();
        Self {
            account,
            rng,
            members,
        }
    }

    /// A random id, for groups (the caller makes sure it is new to the account).
    pub(crate) fn id(&mut self) -> String {
        Id::random(&mut self.rng).into_string()
    }

    /// The group with id `id`, the `index`-th of its account.
    pub(crate) fn group(&mut self, id: String, index: usize) -> FakeGroup {
        let team = TEAMS[self.rng.usize(..TEAMS.len())];
        let mut group = FakeGroup::new(id, format!("{team} {index:04}"));
        group.created_on = self.timestamp(2024);
        group.modified_on = self.timestamp(2025);
        group.policies = self.policies();
        let members = self.rng.usize(..=5);
        let start = self.rng.usize(..MEMBER_POOL);
        group.members = (0..members)
            .map(|k| self.members[(start + k) % MEMBER_POOL].clone())
            .collect();
        group
    }

    /// 0-3 policies, one the most common: real groups grant something. With the sizes below
    /// a group averages about 600 bytes of JSON.
    pub(crate) fn policies(&mut self) -> Box<RawValue> {
        let count = match self.rng.u8(..20) {
            0..=4 => 0,
            5..=15 => 1,
            16..=18 => 2,
            _ => 3,
        };
        json_text(&Value::Array((0..count).map(|_| self.policy()).collect()))
    }

    fn timestamp(&mut self, year: u32) -> String {
        format!(
            "{year}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.rng.u32(1..=12),
            self.rng.u32(1..=28),
            self.rng.u32(..24),
            self.rng.u32(..60),
            self.rng.u32(..60)
        )
    }

    fn policy(&mut self) -> Value {
        let access = if self.rng.u8(..4) == 0 {
            "deny"
        } else {
            "allow"
        };
        let permission_groups: Vec<Value> = (0..self.one_or_two(5))
            .map(|_| self.permission_group())
            .collect();
        let resource_groups: Vec<Value> = (0..self.one_or_two(6))
            .map(|_| self.resource_group())
            .collect();
        let mut policy = Map::new();
        policy.insert("id".into(), json!(self.id()));
        policy.insert("access".into(), json!(access));
        policy.insert("permission_groups".into(), Value::Array(permission_groups));
        policy.insert("resource_groups".into(), Value::Array(resource_groups));
        if self.rng.u8(..8) == 0 {
            // A field the documentation does not name.
            policy.insert(
                "condition".into(),
                json!({"request.ip": {"in": ["192.0.2.0/24", "2001:db8::/32"]}}),
            );
        }
        Value::Object(policy)
    }

    /// Usually 1; 2 once in `odds`.
    fn one_or_two(&mut self, odds: u8) -> usize {
        if self.rng.u8(..odds) == 0 { 2 } else { 1 }
    }

    fn permission_group(&mut self) -> Value {
        let n = self.rng.usize(..PERMISSION_GROUPS.len());
        let (name, label, scopes) = PERMISSION_GROUPS[n];
        json!({
            // A fixed id per permission group, as Cloudflare's are.
            "id": format!("{:016x}{:016x}", (n as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15), (n as u64 + 7).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)),
            "name": name,
            "meta": {"label": label, "scopes": scopes},
        })
    }

    fn resource_group(&mut self) -> Value {
        let account_key = format!("com.cloudflare.api.account.{}", self.account);
        let mut group = Map::new();
        group.insert("id".into(), json!(self.id()));
        let scope = if self.rng.bool() {
            // The object shape of the documentation's example.
            group.insert("name".into(), json!(account_key));
            json!({"key": account_key, "objects": [{"key": "*"}]})
        } else {
            // The list shape of the Python SDK's types, over one or two zones.
            let zones: Vec<Value> = (0..self.one_or_two(5))
                .map(|_| {
                    let zone = Id::random(&mut self.rng).into_string();
                    json!({"key": format!("com.cloudflare.api.account.zone.{zone}"), "objects": [{"key": "*"}]})
                })
                .collect();
            Value::Array(zones)
        };
        group.insert("scope".into(), scope);
        if self.rng.u8(..10) == 0 {
            group.insert(
                "meta".into(),
                json!({"editable": "false", "created_by": "Zoë Ångström"}),
            );
        }
        Value::Object(group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "023e105f4ecef8ad9ca31a8372d0c353";

    #[test]
    fn groups_have_the_reference_shape_in_all_its_variants() {
        let mut generator = Generator::new(ACCOUNT, 3);
        let groups: Vec<FakeGroup> = (0..400)
            .map(|i| {
                let id = generator.id();
                generator.group(id, i)
            })
            .collect();
        let trees: Vec<Value> = groups
            .iter()
            .map(|g| serde_json::from_str(g.policies.get()).unwrap())
            .collect();
        let policies: Vec<&Value> = trees
            .iter()
            .flat_map(|p| p.as_array().into_iter().flatten())
            .collect();
        let counts: Vec<usize> = trees
            .iter()
            .map(|p| p.as_array().map_or(0, Vec::len))
            .collect();
        for n in 0..=3 {
            assert!(counts.contains(&n), "no group with {n} policies");
        }
        assert!(counts.iter().all(|n| *n <= 3));
        let members: Vec<usize> = groups.iter().map(|g| g.members.len()).collect();
        assert!(members.contains(&0) && members.contains(&5));
        assert!(groups.iter().any(|g| !g.name.is_ascii()));
        assert!(groups.iter().all(|g| g.name.contains(' ')));
        let scopes: Vec<&Value> = policies
            .iter()
            .flat_map(|p| p["resource_groups"].as_array().into_iter().flatten())
            .map(|r| &r["scope"])
            .collect();
        assert!(scopes.iter().any(|s| s.is_object()));
        assert!(scopes.iter().any(|s| s.is_array()));
        assert!(policies.iter().any(|p| p.get("condition").is_some()));
        assert!(
            policies
                .iter()
                .flat_map(|p| p["permission_groups"].as_array().into_iter().flatten())
                .all(|pg| pg["meta"]["label"].is_string() && pg["name"].is_string())
        );
    }
}
