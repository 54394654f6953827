use decor::{Backend, Plan};

fn main() {
    let factor = 3u64;
    let xs = [1u64, 2, 3];
    // A worker process runs the function at its address: it cannot have `factor`.
    let _ = Plan::new()
        .backend(Backend::Processes)
        .map_remote(&xs[..], |c: &[u64]| c.iter().map(|x| x * factor).sum::<u64>());
}
