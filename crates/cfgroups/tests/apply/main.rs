//! Deleting for real: `cfgroups apply` end to end against the fake API (every safety block,
//! saved plans, confirmation, restores), the executor in process under random faults, and
//! the binary killed or stopped mid-run.

mod apply;
mod apply_converge;
mod apply_crash;
mod apply_faults;
mod refused;
mod restore_safety;
mod rules;
mod suspend;
mod world_changes;
