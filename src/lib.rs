//! cfgroups keeps Cloudflare IAM user groups the way a YAML file says they should be.
//!
//! Crate map, in the order data flows:
//! - [`model`]: validated ids and the observed group shape;
//! - [`source`]: the `GroupSource` trait and its snapshot and exec implementations;
//! - [`fake_api`]: a stateful local fake of Cloudflare's user-groups API, for tests and
//!   local runs (faults, rate limit, request accounting).

pub mod fake_api;
pub mod model;
pub mod source;
