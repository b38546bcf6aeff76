//! Giving the system back the memory a daemon cycle allocated and freed.
//!
//! glibc returns freed memory to the system only from the top of each heap. A full listing
//! of tens of thousands of groups is freed when its cycle ends, but the pages it used stay
//! resident wherever a small live allocation sits above them, so an idle daemon would keep
//! the size of its largest cycle for good. `malloc_trim` gives those free pages back.

/// Returns to the system every page the allocator holds free; whether any was returned.
/// Called once a cycle is over, when its listing and plan are gone. Elsewhere than glibc it
/// does nothing: musl and the macOS allocator hand memory back themselves.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_freed() -> bool {
    // SAFETY: malloc_trim takes no pointers and locks each arena while it walks it; any
    // thread may call it at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Does nothing: only glibc keeps freed pages this way.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_freed() -> bool {
    false
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::release_freed;
    use std::process::Command;

    /// Set in the copy of the test binary that does the measuring.
    const MEASURING: &str = "CFGROUPS_MEMORY_TEST_MEASURING";
    const MB: u64 = 1024 * 1024;

    /// This process's resident anonymous memory (`RssAnon`), in bytes.
    fn resident_anon() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let kb = status
            .lines()
            .find_map(|line| line.strip_prefix("RssAnon:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .expect("an RssAnon line");
        kb * 1024
    }

    #[test]
    fn memory_freed_below_live_data_goes_back_to_the_system() {
        if std::env::var_os(MEASURING).is_none() {
            // Measured in a process of its own: other tests allocate alongside this one.
            let measured = Command::new(std::env::current_exe().expect("the test binary"))
                .args([
                    "--exact",
                    "memory::tests::memory_freed_below_live_data_goes_back_to_the_system",
                    "--test-threads",
                    "1",
                ])
                .env(MEASURING, "1")
                .output()
                .expect("the test binary runs");
            assert!(
                measured.status.success(),
                "the measuring run failed: {}\n{}",
                String::from_utf8_lossy(&measured.stdout),
                String::from_utf8_lossy(&measured.stderr)
            );
            return;
        }
        let before = resident_anon();
        // 64 MB in 1 KiB blocks, one in 64 kept: like a listing freed around what outlives it.
        let mut blocks: Vec<Vec<u8>> = (0..64 * 1024).map(|i| vec![i as u8; 1024]).collect();
        let kept: Vec<Vec<u8>> = blocks.iter_mut().step_by(64).map(std::mem::take).collect();
        drop(blocks);
        let freed = resident_anon();
        assert!(
            freed > before + 48 * MB,
            "the allocator kept the freed pages: {} MB resident above the start",
            (freed.saturating_sub(before)) / MB
        );
        assert!(release_freed(), "malloc_trim released something");
        let released = resident_anon();
        assert!(
            released < before + 16 * MB,
            "after release {} MB are resident above the start (before release: {} MB)",
            released.saturating_sub(before) / MB,
            freed.saturating_sub(before) / MB
        );
        assert_eq!(kept.len(), 1024, "the live blocks are still there");
    }
}
