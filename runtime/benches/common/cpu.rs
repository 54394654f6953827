//! CPU time of a process of this host, for the benches' idle-cost figures.

/// User plus system CPU time of process `pid` (`"self"` for this one), from `/proc`, in clock
/// ticks (10 ms on most machines).
pub fn cpu_time(pid: &str) -> std::time::Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: `sysconf` with a constant argument.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    std::time::Duration::from_micros(ticks * 1_000_000 / hz)
}
