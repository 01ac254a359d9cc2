//! The memory a command may use, and the check of a configuration's
//! estimated need against it, made before anything large is allocated.
//!
//! Available: `MemAvailable` of /proc/meminfo, bounded by the address-space
//! limit (RLIMIT_AS, less what the process already maps) and by the memory
//! cgroup's limit (less its usage), whichever is set; unknown elsewhere
//! (then nothing is refused).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// Room kept for what an estimate leaves out (the program, small buffers).
const MARGIN: u64 = 64 << 20;

/// Memory available to this process, and what bounds it.
#[derive(Clone, Debug)]
pub struct Available {
    pub bytes: u64,
    pub source: &'static str,
}

/// The value in kB of `key:` in a /proc file such as /proc/meminfo.
fn proc_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .and_then(|kb| kb.checked_mul(1024))
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The soft address-space limit, from /proc/self/limits (`None`: unlimited).
fn address_space_left() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))?;
    let soft: u64 = line
        .trim_start_matches("Max address space")
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let mapped = proc_kb(&status, "VmSize").unwrap_or(0);
    Some(soft.saturating_sub(mapped))
}

/// The tightest memory-cgroup limit less its usage, over the process's
/// cgroup and its ancestors (v2, else v1).
fn cgroup_left() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut best: Option<u64> = None;
    let mut consider = |limit: Option<u64>, usage: Option<u64>| {
        // v1 writes "no limit" as a number near 2^63.
        if let Some(limit) = limit.filter(|&l| l < (1 << 62)) {
            let left = limit.saturating_sub(usage.unwrap_or(0));
            best = Some(best.map_or(left, |b| b.min(left)));
        }
    };
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (root, limit, usage) = if controllers.is_empty() {
            ("/sys/fs/cgroup", "memory.max", "memory.current")
        } else if controllers.split(',').any(|c| c == "memory") {
            (
                "/sys/fs/cgroup/memory",
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
            )
        } else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        let mut dir = Some(Path::new(rel));
        while let Some(d) = dir {
            let at: PathBuf = Path::new(root).join(d);
            consider(read_u64(&at.join(limit)), read_u64(&at.join(usage)));
            dir = d.parent();
        }
    }
    best
}

/// The memory available now (see the module docs), `None` when unknown.
pub fn available() -> Option<Available> {
    let mut best: Option<Available> = None;
    let mut take = |bytes: Option<u64>, source: &'static str| {
        if let Some(bytes) = bytes
            && best.as_ref().is_none_or(|b| bytes < b.bytes)
        {
            best = Some(Available { bytes, source });
        }
    };
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    take(
        meminfo.as_deref().and_then(|m| proc_kb(m, "MemAvailable")),
        "MemAvailable in /proc/meminfo",
    );
    take(address_space_left(), "the address-space limit (RLIMIT_AS)");
    take(cgroup_left(), "the memory cgroup's limit");
    best
}

/// `1.43 GB`-style size.
pub fn human(bytes: u64) -> String {
    let units = ["bytes", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.2} {}", units[u])
    }
}

/// Whether a need of `need` bytes (`None`: more than can be counted) fits
/// the memory available (always, when that is unknown).
pub fn fits(need: Option<u64>) -> bool {
    match (available(), need) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(av), Some(n)) => n.saturating_add(MARGIN) <= av.bytes,
    }
}

/// Refuses a need of `need` bytes (`None`: more than can be counted) when it
/// does not fit the memory available; the error starts with `what` (the
/// option to blame) and gives both figures in bytes.
pub fn check(need: Option<u64>, what: &str) -> Result<()> {
    let Some(av) = available() else {
        return Ok(());
    };
    match need {
        None => bail!(
            "{what}: the run needs more memory than can be addressed (more than {} bytes), far more than the {} bytes ({}) available ({})",
            u64::MAX,
            av.bytes,
            human(av.bytes),
            av.source
        ),
        Some(n) if n.saturating_add(MARGIN) > av.bytes => bail!(
            "{what}: the run needs about {n} bytes ({}) of memory, more than the {} bytes ({}) available ({})",
            human(n),
            av.bytes,
            human(av.bytes),
            av.source
        ),
        Some(_) => Ok(()),
    }
}

/// `n` default values, allocated fallibly: an error naming `what` instead
/// of an abort.
pub fn zeros<T: Clone + Default>(n: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    if v.try_reserve_exact(n).is_err() {
        bail!(
            "{what}: cannot allocate {n} values of {} bytes",
            std::mem::size_of::<T>()
        );
    }
    v.resize(n, T::default());
    Ok(v)
}

/// Checked product of sizes as `u64` (`None` on overflow).
pub fn product(dims: &[usize]) -> Option<u64> {
    dims.iter()
        .try_fold(1u64, |a, &d| a.checked_mul(u64::try_from(d).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_values() {
        let m = "MemTotal:       100 kB\nMemAvailable:    2048 kB\n";
        assert_eq!(proc_kb(m, "MemAvailable"), Some(2048 * 1024));
        assert_eq!(proc_kb(m, "Mem"), None);
        if let Some(a) = available() {
            assert!(a.bytes > 0, "{a:?}");
        }
        assert_eq!(human(999), "999 bytes");
        assert_eq!(human(1_430_000_000_000), "1.43 TB");
        assert!(check(None, "--x 1").is_err() || available().is_none());
        assert!(check(Some(1000), "--x 1").is_ok());
        assert_eq!(product(&[usize::MAX, 2, 2]), None);
    }
}
