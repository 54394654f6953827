use decor::logged;

#[logged(skip(password), redact = true)]
fn login(user: &str, password: &str) -> bool {
    user != password
}

fn main() {
    login("a", "b");
}
