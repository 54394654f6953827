//! Which serving ranks a call of rank 0 drives: calls from several threads run side by side on
//! ranks of their own, as processes calls do on workers of their own, so that answers and
//! events never need telling apart by call: a rank's frames all belong to the one call that
//! holds it.
//!
//! A call takes every free rank it can use (never more than its chunks); with none free it waits
//! for one. While other calls wait, a call that holds more than one rank gives back each rank
//! that has nothing of its in flight instead of sending it another chunk, so a long call does
//! not keep the ranks from the calls behind it.

use std::sync::{Condvar, Mutex, MutexGuard};

struct Claims {
    /// Per rank (0 unused), whether a call holds it.
    held: Vec<bool>,
    /// Calls waiting for a rank.
    waiting: usize,
}

static CLAIMS: Mutex<Claims> = Mutex::new(Claims {
    held: Vec::new(),
    waiting: 0,
});
static FREED: Condvar = Condvar::new();

fn claims() -> MutexGuard<'static, Claims> {
    CLAIMS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The ranks one call holds, given back when it is dropped (also when the call unwinds).
pub(super) struct Held {
    ranks: Vec<usize>,
}

/// Takes the free ones of ranks `1..ranks` (at most `want`, at least one), waiting for one if
/// none is free.
pub(super) fn claim(ranks: usize, want: usize) -> Held {
    let mut c = claims();
    if c.held.len() < ranks {
        c.held.resize(ranks, false);
    }
    let mut waited = false;
    loop {
        let free: Vec<usize> = (1..ranks)
            .filter(|&r| !c.held[r])
            .take(want.max(1))
            .collect();
        if !free.is_empty() {
            for &r in &free {
                c.held[r] = true;
            }
            if waited {
                c.waiting -= 1;
            }
            return Held { ranks: free };
        }
        if !waited {
            c.waiting += 1;
            waited = true;
        }
        c = FREED.wait(c).unwrap_or_else(|e| e.into_inner());
    }
}

impl Held {
    /// The ranks held, in order.
    pub(super) fn ranks(&self) -> &[usize] {
        &self.ranks
    }

    /// Gives `rank` back if other calls wait for one and this call keeps another; whether it
    /// did. For a rank with nothing of this call in flight.
    pub(super) fn share(&mut self, rank: usize) -> bool {
        if self.ranks.len() < 2 {
            return false;
        }
        let mut c = claims();
        if c.waiting == 0 {
            return false;
        }
        c.held[rank] = false;
        self.ranks.retain(|&r| r != rank);
        FREED.notify_all();
        true
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut c = claims();
        for &r in &self.ranks {
            c.held[r] = false;
        }
        FREED.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_take_free_ranks_share_them_with_waiters_and_give_them_back() {
        let mut first = claim(3, 8);
        assert_eq!(first.ranks(), &[1, 2]);
        assert!(!first.share(1), "nobody waits");
        let second = std::thread::spawn(|| claim(3, 8).ranks().to_vec());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while claims().waiting == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the second call never waited"
            );
            std::thread::yield_now();
        }
        assert!(first.share(1), "a call waits");
        assert_eq!(second.join().unwrap(), vec![1]);
        assert!(!first.share(2), "the last rank a call holds stays");
        drop(first);
        assert_eq!(claim(3, 1).ranks(), &[1]);
    }
}
