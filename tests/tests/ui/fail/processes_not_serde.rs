use decor::parallel_chunks;

struct Client {
    url: String,
}

#[derive(Debug, Clone)]
struct Summary(String);

#[parallel_chunks(backend = "processes", reduce = "concat")]
fn summarize(text: &str, client: &Client) -> Vec<Summary> {
    vec![Summary(format!("{}{text}", client.url))]
}

fn main() {
    let _ = summarize("a", &Client { url: "x".into() });
}
