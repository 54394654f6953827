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

/// A bench's command line: `--<size> N` (the input's size), `--rounds N`, `--only TEXT` (the
/// ways whose names hold it); what is not given keeps the default. Anything else is ignored
/// (`cargo bench` passes `--bench`).
pub struct Args {
    /// The input's size, in the bench's unit.
    pub size: usize,
    /// How many times each way runs.
    pub rounds: usize,
    /// Only the ways whose names hold this.
    pub only: String,
}

impl Args {
    /// Reads this process's arguments; `size` names the size option ("rows", "lines").
    pub fn parse(size: &str, default_size: usize, default_rounds: usize) -> Result<Args, String> {
        let mut args = std::env::args().skip(1);
        let mut out = Args {
            size: default_size,
            rounds: default_rounds,
            only: String::new(),
        };
        let number = |flag: &str, value: Option<String>| {
            let value = value.ok_or(format!("--{flag} N"))?;
            value.parse().map_err(|e| format!("--{flag} {value}: {e}"))
        };
        while let Some(a) = args.next() {
            match a.strip_prefix("--") {
                Some(flag) if flag == size => out.size = number(flag, args.next())?,
                Some("rounds") => out.rounds = number("rounds", args.next())?,
                Some("only") => out.only = args.next().ok_or("--only TEXT")?,
                _ => {}
            }
        }
        Ok(out)
    }
}
