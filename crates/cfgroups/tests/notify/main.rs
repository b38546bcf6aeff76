//! Notifications against a local HTTP receiver: delivery to sinks that answer 500, are
//! down, hang or refuse (retries, then given up, dropped and counted, never waited for); the
//! payload of each event as golden files; deduplication across the daemon's cycles; a hung
//! sink that does not hold up a deletion; and `apply --notify`.

mod apply;
mod daemon;
mod delivery;
mod payloads;
