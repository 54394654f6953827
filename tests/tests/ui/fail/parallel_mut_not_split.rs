use decor::parallel_chunks;

#[parallel_chunks(chunks = 2)]
fn collect(xs: &[u64], out: &mut Vec<u64>) {
    out.extend_from_slice(xs);
}

fn main() {
    let mut out = Vec::new();
    collect(&[1, 2], &mut out);
}
