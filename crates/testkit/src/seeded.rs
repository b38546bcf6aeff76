//! Seeded randomness and run sizes from the environment, so a failing random run can be
//! replayed and a long run asked for without editing the tests.

/// A pseudo-random generator for test choices, seeded for reproducibility.
pub fn rng(seed: u64) -> fastrand::Rng {
    fastrand::Rng::with_seed(seed)
}

/// `name` from the environment, parsed, or `default` when it is unset; panics on a value that
/// does not parse, so a typo in a long-run command is not silently a short run.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} does not parse")),
        Err(_) => default,
    }
}
