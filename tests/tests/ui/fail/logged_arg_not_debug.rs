use decor::logged;

struct Connection;

#[logged]
fn send(conn: &Connection, bytes: &[u8]) -> usize {
    let _ = conn;
    bytes.len()
}

fn main() {
    send(&Connection, b"hi");
}
