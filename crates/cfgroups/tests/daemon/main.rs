//! `cfgroups run`, the real binary against the fake API: config edits, signals, health and
//! metrics, and long chaos and crash runs.

mod chaos;
mod daemon;
mod journal_file;
mod refused;
mod rules;
mod suspend;
