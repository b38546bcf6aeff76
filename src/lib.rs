//! cfgroups keeps Cloudflare IAM user groups the way a YAML file says they should be.
//!
//! Crate map, in the order data flows:
//! - [`model`]: validated ids and the observed group shape;
//! - [`cloudflare`]: the live API client (credentials, retries, request budget, pagination);
//! - [`source`]: the `GroupSource` trait and its cloudflare, snapshot and exec implementations.

pub mod cloudflare;
pub mod model;
pub mod source;
