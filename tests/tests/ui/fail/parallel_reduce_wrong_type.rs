use std::collections::{BTreeMap, HashMap};

use decor::parallel_chunks;

fn merge(mut a: HashMap<String, u64>, b: HashMap<String, u64>) -> HashMap<String, u64> {
    for (k, v) in b {
        *a.entry(k).or_default() += v;
    }
    a
}

#[parallel_chunks(cut_at = "line", reduce = merge)]
fn counts(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        *out.entry(line.to_owned()).or_default() += 1;
    }
    out
}

fn main() {
    let _ = counts("a\nb\na\n");
}
