use decor::parallel_chunks;

struct Client;

#[parallel_chunks(chunks = 2)]
fn send(xs: &[u64], client: Client) {
    let _ = (xs, client);
}

fn main() {
    send(&[1, 2], Client);
}
