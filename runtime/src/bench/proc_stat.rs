//! A server's CPU time and memory from /proc, and CPU pinning (what `taskset` does).

use tokio::time::Instant;

use anyhow::Context;

/// CPU time and resident memory of a set of processes at one instant.
pub struct Sample {
    at: Instant,
    cpu_ticks: u64,
    pub rss_kib: u64,
}

impl Sample {
    pub fn of(pids: &[u32]) -> anyhow::Result<Self> {
        let mut cpu_ticks = 0;
        let mut rss_kib = 0;
        for pid in pids {
            let stat =
                std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("/proc/{pid}/stat"))?;
            // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
            let rest = stat.rsplit_once(')').map(|(_, r)| r).context("malformed stat")?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let num = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok()).context("malformed stat");
            cpu_ticks += num(14)? + num(15)?;
            let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .with_context(|| format!("/proc/{pid}/status"))?;
            rss_kib += status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0);
        }
        Ok(Sample { at: Instant::now(), cpu_ticks, rss_kib })
    }

    pub fn cpu_secs_since(&self, before: &Sample) -> f64 {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        self.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 / hz
    }

    pub fn wall_since(&self, before: &Sample) -> f64 {
        (self.at - before.at).as_secs_f64()
    }
}

/// The CPUs this machine has online.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Pins every thread of `pid` to `cpus`.
pub fn pin_process(pid: u32, cpus: &[usize]) -> anyhow::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET only write into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).with_context(|| format!("/proc/{pid}/task"))?;
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse::<libc::pid_t>().ok()) else { continue };
        // SAFETY: sched_setaffinity reads the set we own; a thread that just ended fails harmlessly.
        unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    }
    Ok(())
}
