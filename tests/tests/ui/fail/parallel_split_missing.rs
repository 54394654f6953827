use decor::parallel_chunks;

#[parallel_chunks(split = text, reduce = "concat")]
fn words(input: &str) -> Vec<String> {
    input.split_whitespace().map(String::from).collect()
}

fn main() {
    let _ = words("a b");
}
