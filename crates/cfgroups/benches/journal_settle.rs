//! Cost of settling a long journal: writes a journal of about 100 MB (three groups of 3,000
//! members each, journaled again and again, every delete failed, as a SCIM-managed group
//! does under the daemon), then opens it and settles it from a listing twice, printing the
//! wall time of each step and the peak RSS after it.
//!
//! `cargo bench --bench journal_settle` (add `-- --mb N` for another size). A reconcile
//! cycle settles once; its cost should not grow with the journal's length. Measured at
//! 100 MB: 1.0-1.7 s and 1,050 MB peak RSS per settle when every settle re-read the file;
//! with the index, 1.3-1.7 s once at open (8.5 MB peak RSS) and about 10 us per settle.
//!
//! Targets (the program exits non-zero when one is missed): peak RSS after the open under
//! 50 MB, whatever the journal's size (the file is streamed, never held); each settle under
//! 10 ms (it reads only what was appended since the open, here nothing). The open's wall
//! time is one read of the file and is printed, not bounded.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use cfgroups::journal::{self, Journal};
use cfgroups::model::{AccountId, Observed, ObservedGroup};
use testkit::measure::Targets;

const ACCOUNT: &str = "023e105f4ecef8ad9ca31a8372d0c353";
const GROUPS: u32 = 3;
const MEMBERS: u32 = 3_000;

fn group_json(g: u32) -> String {
    format!(
        r#"{{"id":"{g:032x}","name":"SCIM group {g}","created_on":"2025-09-04T01:58:20Z","modified_on":"2025-11-02T09:14:51Z","policies":[{{"id":"64409ddbb45f51c3bd65693b3d0840fb","access":"allow","permission_groups":[{{"id":"05880cd1bdc24d8bae6be2c6a5f4e1ff","name":"Account Settings Read"}}],"resource_groups":[{{"id":"0c2282666be49ee714186ebf9a8137e9","scope":{{"key":"com.cloudflare.api.account.{ACCOUNT}","objects":[{{"key":"*"}}]}}}}]}}]}}"#
    )
}

fn members_json(g: u32) -> String {
    let members: Vec<String> = (0..MEMBERS)
        .map(|m| {
            format!(
                r#"{{"id":"{g:08x}{m:024x}","email":"user{m}.group{g}@example.com","status":"accepted","user":{{"first_name":"First{m}","last_name":"Last{m}"}}}}"#
            )
        })
        .collect();
    format!("[{}]", members.join(","))
}

/// Writes intents and failed outcomes, in the format every cfgroups version reads, until
/// the file holds `bytes`.
fn generate(path: &Path, bytes: u64) -> u64 {
    let file = std::fs::File::create(path).expect("create the journal");
    let mut out = BufWriter::new(file);
    let groups: Vec<(String, String)> = (0..GROUPS)
        .map(|g| (group_json(g), members_json(g)))
        .collect();
    let mut written = 0u64;
    let mut run = 0u64;
    while written < bytes {
        run += 1;
        for (g, (group, members)) in groups.iter().enumerate() {
            let intent = format!(
                r#"{{"type":"intent","at":"2026-01-01T00:00:00Z","run":"{run}-1","account":"{ACCOUNT}","group":{group},"members":{members}}}"#
            );
            let outcome = format!(
                r#"{{"type":"outcome","at":"2026-01-01T00:00:01Z","run":"{run}-1","account":"{ACCOUNT}","group_id":"{g:032x}","outcome":"failed","error":"HTTP 403: SCIM-managed"}}"#
            );
            for line in [intent, outcome] {
                out.write_all(line.as_bytes()).expect("write");
                out.write_all(b"\n").expect("write");
                written += line.len() as u64 + 1;
            }
        }
    }
    out.flush().expect("flush");
    written
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let mut targets = Targets::new("journal_settle");
    let args: Vec<String> = std::env::args().collect();
    let mb = args
        .iter()
        .position(|a| a == "--mb")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(journal::JOURNAL_FILE);
    let written = generate(&path, mb * 1_000_000);
    println!(
        "journal: {:.1} MB, peak RSS after writing it {:.1} MB",
        written as f64 / 1e6,
        peak_rss_mb()
    );

    let account: AccountId = ACCOUNT.parse().expect("account id");
    let listed: Vec<ObservedGroup> = (0..GROUPS)
        .map(|g| serde_json::from_str(&group_json(g)).expect("group"))
        .collect();
    let observed: Observed = [(account, Ok(listed))].into_iter().collect();

    let started = Instant::now();
    let journal = Journal::open(&path).expect("open the journal");
    targets.note(
        "open",
        format!(
            "{:.3} s (one read of the file)",
            started.elapsed().as_secs_f64()
        ),
    );
    let peak = peak_rss_mb();
    targets.check(
        "peak RSS after the open",
        format!("{peak:.1} MB"),
        "< 50 MB",
        peak < 50.0,
    );
    for n in 1..=2 {
        let started = Instant::now();
        let settled = journal::settle(&journal, &observed).expect("settle");
        let took = started.elapsed();
        targets.check(
            &format!("settle #{n} ({} outcome(s) appended)", settled.len()),
            format!("{:.6} s", took.as_secs_f64()),
            "< 10 ms",
            took.as_secs_f64() < 0.010,
        );
    }
    targets.finish();
}
