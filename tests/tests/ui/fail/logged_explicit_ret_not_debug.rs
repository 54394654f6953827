use decor::logged;

struct Token;

#[logged(ret = true)]
fn issue() -> Token {
    Token
}

fn main() {
    let _ = issue();
}
