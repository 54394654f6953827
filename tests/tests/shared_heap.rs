//! `decor::shm::SharedHeap` as a program's global allocator: plain `Vec`s reach worker processes
//! without a copy, memory and descriptors stay flat under churn, `realloc` keeps contents
//! without copying quadratically, a forked child cannot write the parent's memory, and SIGKILL
//! leaves nothing behind. Every test that could hang runs under a time limit of its own.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use decor::parallel_chunks;
use decor::shm::{SharedHeap, copied_bytes};
use decor_tests::{exclusive, output_within, within};

#[global_allocator]
static HEAP: SharedHeap = SharedHeap::new();

const LIMIT: Duration = Duration::from_secs(60);
const MIB: usize = 1 << 20;

#[parallel_chunks(chunks = 4, workers = 2, backend = "processes", reduce = "concat")]
fn sum_and_pid(xs: &[u64]) -> Vec<(u64, u32)> {
    vec![(xs.iter().sum(), std::process::id())]
}

fn total(parts: &[(u64, u32)]) -> u64 {
    parts.iter().map(|(s, _)| s).sum()
}

/// The `memfd:decor-heap` mappings of a process, as (inode, number of mappings).
fn heap_mappings(pid: u32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("memfd:decor-heap"))
        .map(|l| l.split_whitespace().nth(4).unwrap_or_default().to_owned())
        .collect()
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn shmem_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Shmem:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn a_plain_vec_reaches_the_workers_without_a_copy_and_a_small_one_is_copied() {
    let _pool = exclusive();
    let n = 2 * MIB; // 16 MiB of u64
    let xs: Vec<u64> = (0..n as u64).collect();
    assert!(HEAP.holds(xs.as_ptr()), "a 16 MiB Vec is in shared memory");
    let before = copied_bytes();
    let (parts, xs) = within(LIMIT, "a call on a plain Vec", move || {
        (sum_and_pid(&xs), xs)
    });
    assert_eq!(total(&parts), (n as u64 - 1) * n as u64 / 2);
    assert!(parts.iter().all(|(_, pid)| *pid != std::process::id()));
    assert_eq!(copied_bytes(), before, "nothing was copied");

    // The same call on a Vec under the threshold copies it, so the counter can tell.
    let small: Vec<u64> = (0..1_000).collect();
    assert!(!HEAP.holds(small.as_ptr()));
    let parts = within(LIMIT, "a call on a small Vec", move || sum_and_pid(&small));
    assert_eq!(total(&parts), 499_500);
    assert_eq!(copied_bytes(), before + 8_000);

    // A later call maps nothing new: each worker mapped the heap once.
    let workers: BTreeSet<u32> = parts.iter().map(|(_, p)| *p).collect();
    let parts = within(LIMIT, "a second call on the Vec", move || sum_and_pid(&xs));
    assert_eq!(parts.len(), 4);
    for pid in workers {
        let maps = heap_mappings(pid);
        let ours: BTreeSet<_> = maps.iter().collect();
        assert!(
            ours.len() <= 2,
            "worker {pid}: the parent's heap and perhaps its own: {maps:?}"
        );
    }
}

/// 4 threads × 150 large allocations of 1-9 MiB, some grown, shrunk and moved back under the
/// threshold.
fn churn() {
    within(LIMIT, "allocation churn", || {
        std::thread::scope(|s| {
            for t in 0..4u8 {
                s.spawn(move || {
                    for i in 0..150usize {
                        let len = MIB + (i * 7919 + t as usize * 104_729) % (8 * MIB);
                        let mut v = vec![t; len];
                        v[len - 1] = t.wrapping_add(1);
                        assert_eq!(v[len / 2], t);
                        if i % 10 == 0 {
                            v.resize(len * 3, t);
                            v.truncate(1_000);
                            v.shrink_to_fit();
                            assert!(v.iter().all(|&b| b == t));
                        }
                    }
                });
            }
        });
    });
}

fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

#[test]
fn allocation_churn_on_four_threads_leaves_memory_descriptors_and_mappings_flat() {
    let _pool = exclusive();
    // A first round makes what threads keep for good (stacks, the system allocator's arenas).
    churn();
    HEAP.trim();
    let (fds, maps, before) = (open_descriptors(), mappings(), HEAP.stats());
    churn();
    let kept = HEAP.stats();
    assert!(kept.cached_bytes <= 64 * MIB, "{kept:?}");
    assert!(kept.resident_bytes <= before.resident_bytes + 65 * MIB as u64);
    HEAP.trim();
    let after = HEAP.stats();
    assert_eq!(after.allocations, before.allocations, "{after:?}");
    assert_eq!(after.bytes, before.bytes);
    assert!(
        after.resident_bytes <= before.resident_bytes + 64 * 1024,
        "memory went back: {before:?} -> {after:?}"
    );
    assert!(open_descriptors() <= fds, "no descriptor per allocation");
    assert!(
        mappings() <= maps + 2,
        "no mapping per allocation: {maps} -> {}",
        mappings()
    );
    assert_eq!(
        heap_mappings(std::process::id()).len(),
        1,
        "one mapping for the whole heap"
    );
}

#[test]
fn a_vec_grown_from_a_kilobyte_to_256_mib_keeps_its_contents_without_quadratic_copying() {
    let _pool = exclusive();
    let copied_before = HEAP.stats().realloc_copied_bytes;
    let n = 32 * MIB; // 256 MiB of u64
    let v = within(LIMIT, "growing a Vec", move || {
        let mut v: Vec<u64> = Vec::with_capacity(128);
        for i in 0..n as u64 {
            v.push(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        v
    });
    assert!(HEAP.holds(v.as_ptr()));
    assert!(
        v.iter()
            .enumerate()
            .all(|(i, &x)| x == (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    );
    let copied = HEAP.stats().realloc_copied_bytes - copied_before;
    assert!(
        copied <= (n * 8 / 2) as u64,
        "copied {copied} bytes growing to {} bytes",
        n * 8
    );
    // Shrinking in place gives the tail back (a shrunk block is not cached memory).
    let resident = HEAP.stats().resident_bytes;
    let mut v = v;
    v.truncate(MIB);
    v.shrink_to_fit();
    assert!(HEAP.holds(v.as_ptr()));
    assert!(HEAP.stats().resident_bytes + 200 * MIB as u64 <= resident);
    assert_eq!(
        v[MIB - 1],
        (MIB as u64 - 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    );
}

#[test]
fn child_forks_and_writes_its_copy() {
    if std::env::var_os("DECOR_HEAP_FORK").is_none() {
        return;
    }
    let mut v = vec![7u64; MIB / 2];
    assert!(HEAP.holds(v.as_ptr()));
    // SAFETY: the forked process only writes its memory, calls into decor and `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        v[0] = 9;
        let fresh = vec![5u64; MIB]; // the arena is the parent's: this goes elsewhere
        let ok = v[0] == 9 && total(&sum_and_pid(&fresh)) == 5 * MIB as u64;
        drop(fresh);
        drop(v);
        // SAFETY: ends the forked process without running the harness's exit code.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) }
    }
    let mut status = 0;
    // SAFETY: waits for the process we forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    println!(
        "FORKED EXIT {} PARENT SEES {}",
        libc::WEXITSTATUS(status),
        v[0]
    );
    let parts = sum_and_pid(&v);
    println!("PARENT SUM {}", total(&parts));
    v[1] = 8;
}

#[test]
fn a_child_forked_without_exec_cannot_write_the_parents_memory() {
    if std::env::var_os("DECOR_HEAP_FORK").is_some() {
        return;
    }
    let out = output_within(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_forks_and_writes_its_copy", "--nocapture"])
            .env("DECOR_HEAP_FORK", "1"),
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && stdout.contains("FORKED EXIT 0 PARENT SEES 7")
            && stdout.contains(&format!("PARENT SUM {}", 7 * MIB / 2)),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn child_holds_256_mib_until_killed() {
    if std::env::var_os("DECOR_HEAP_KILL").is_none() {
        return;
    }
    let xs = vec![1u64; 32 * MIB];
    let parts = sum_and_pid(&xs);
    assert_eq!(total(&parts), 32 * MIB as u64);
    let workers: BTreeSet<u32> = parts.iter().map(|(_, p)| *p).collect();
    let inode = heap_mappings(std::process::id())[0].clone();
    println!("READY {inode} {workers:?}");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn sigkill_of_the_parent_leaves_no_shared_memory_behind() {
    if std::env::var_os("DECOR_HEAP_KILL").is_some() {
        return;
    }
    let _pool = exclusive();
    let dev_shm = || -> BTreeSet<_> {
        std::fs::read_dir("/dev/shm")
            .map(|d| d.filter_map(|e| Some(e.ok()?.file_name())).collect())
            .unwrap_or_default()
    };
    let shm_before = dev_shm();
    let shmem_before = shmem_kib();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_holds_256_mib_until_killed", "--nocapture"])
        .env("DECOR_HEAP_KILL", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let ready = within(LIMIT, "the child's 256 MiB call", move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("READY "))
    });
    let Some(ready) = ready else {
        let _ = child.kill();
        panic!("the child ended before its call: {:?}", child.wait());
    };
    let inode = ready.split_whitespace().nth(1).unwrap().to_owned();
    let workers: Vec<u32> = ready
        .split(['{', '}', ','])
        .skip(1)
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    assert!(!workers.is_empty(), "{ready}");
    for w in &workers {
        assert!(
            heap_mappings(*w).contains(&inode),
            "worker {w} maps the heap"
        );
    }
    assert!(
        shmem_kib() >= shmem_before + 200 * 1024,
        "the 256 MiB are shared memory"
    );
    // SAFETY: a signal to the child we started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let start = Instant::now();
    loop {
        let left: Vec<u32> = workers
            .iter()
            .copied()
            .filter(|w| heap_mappings(*w).contains(&inode))
            .collect();
        let shmem = shmem_kib();
        if left.is_empty() && shmem < shmem_before + 64 * 1024 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still mapped by {left:?}; Shmem {shmem} KiB against {shmem_before} KiB before"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(dev_shm(), shm_before, "nothing named in /dev/shm");
}

#[test]
fn zeroed_memory_is_zero_when_a_freed_block_is_reused() {
    let _pool = exclusive();
    for round in 0..3u8 {
        let dirty = vec![round + 1; 2 * MIB];
        let at = dirty.as_ptr();
        drop(dirty);
        let clean = vec![0u8; 2 * MIB];
        assert!(HEAP.holds(clean.as_ptr()));
        if round == 0 {
            assert_eq!(clean.as_ptr(), at, "the freed extent was reused");
        }
        assert!(clean.iter().all(|&b| b == 0), "round {round}");
    }
}

#[parallel_chunks(chunks = 4, workers = 2, backend = "processes", reduce = "sum")]
fn known_words(words: &[String], known: &std::collections::BTreeSet<String>) -> usize {
    words.iter().filter(|w| known.contains(*w)).count()
}

#[test]
fn large_encoded_chunks_and_parameters_cross_through_shared_memory_intact() {
    let _pool = exclusive();
    // Both over 64 KiB encoded, and allocated in the shared heap: the encoded copies must not be
    // freed before the workers read them.
    let words: Vec<String> = (0..200_000).map(|i| format!("word{}", i % 5_000)).collect();
    let known: std::collections::BTreeSet<String> =
        (0..20_000).map(|i| format!("word{}", i * 2)).collect();
    let expected = words.iter().filter(|w| known.contains(*w)).count();
    let before = copied_bytes();
    let (got, again) = within(LIMIT, "large encoded values on processes", move || {
        (known_words(&words, &known), known_words(&words, &known))
    });
    assert_eq!((got, again), (expected, expected));
    let copied = copied_bytes() - before;
    assert!(
        copied > 2 * (1 << 20),
        "every byte encoded is counted: {copied}"
    );
}
