use decor::logged;

#[logged(max_len = "64", ret = 1, err = "yes", skip = password, skip_all = true)]
fn login(user: &str, password: &str) -> Result<bool, String> {
    Ok(user != password)
}

#[logged(max_len = 0)]
fn empty(x: u8) {
    let _ = x;
}

fn main() {
    let _ = login("a", "b");
    empty(1);
}
