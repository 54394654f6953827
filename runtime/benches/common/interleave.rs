//! Ways of one bench run in turn, one call each per round, so that the machine's drift over the
//! run touches every way alike; each way's median, and a processes way against its threads
//! partner.

use std::time::{Duration, Instant};

/// The median of `t`.
pub fn median(mut t: Vec<Duration>) -> Duration {
    t.sort();
    t[t.len() / 2]
}

/// Runs `run(k)` for each of the `ways` once per round, in turn, for `rounds` rounds: each way's
/// median time.
pub fn medians(ways: usize, rounds: usize, mut run: impl FnMut(usize)) -> Vec<Duration> {
    let mut times = vec![Vec::new(); ways];
    for _ in 0..rounds {
        for (k, t) in times.iter_mut().enumerate() {
            let start = Instant::now();
            run(k);
            t.push(start.elapsed());
        }
    }
    times.into_iter().map(median).collect()
}

/// Way `k`'s median over that of its partner, the way named as it is with "threads" for
/// "processes"; `None` for a way that has none (a threads way is no partner of itself).
pub fn vs_threads(names: &[&str], medians: &[Duration], k: usize) -> Option<f64> {
    let partner = names[k].replace("processes", "threads");
    let j = names.iter().position(|n| *n == partner && *n != names[k])?;
    Some(medians[k].as_secs_f64() / medians[j].as_secs_f64())
}
