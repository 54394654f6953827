use decor::logged;

#[logged(skip(pasword))]
fn login(user: &str, password: &str) -> bool {
    user != password
}

fn main() {
    login("a", "b");
}
