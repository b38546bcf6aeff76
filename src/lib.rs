//! cfgroups keeps Cloudflare IAM user groups the way a YAML file says they should be.
//!
//! Crate map, in the order data flows:
//! - [`model`]: validated ids and the observed group shape;
//! - [`source`]: the `GroupSource` trait and its snapshot and exec implementations.

pub mod model;
pub mod source;
