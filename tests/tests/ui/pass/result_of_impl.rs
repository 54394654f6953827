//! A `Result` whose `Ok` type is `impl Trait` and whose body has only `Ok(…)`: the error type is
//! still known when `#[logged]` picks how to show it (a `Debug`-only error here), sync and async.
#![deny(warnings)]
use decor::logged;

#[derive(Debug)]
struct OnlyDebug;

#[logged]
fn evens(n: u32) -> Result<impl Iterator<Item = u32>, ()> {
    Ok((0..n).filter(|x| x % 2 == 0))
}

#[logged]
fn odds(n: u32) -> Result<impl Iterator<Item = u32>, OnlyDebug> {
    Ok((0..n).filter(|x| x % 2 == 1))
}

#[logged]
async fn later(n: u32) -> Result<impl Iterator<Item = u32>, ()> {
    Ok(0..n)
}

fn main() {
    assert_eq!(evens(5).unwrap().count(), 3);
    assert_eq!(odds(5).unwrap().count(), 2);
    let _ = later(3);
}
