//! Shapes that run on processes (asked for, or moved there by `DECOR_BACKEND`): generic
//! functions and associated functions of generic `impl`s whose types are serde, every cut input
//! that crosses, and bodies whose own items shadow the names of the signature.

use decor::serde::de::DeserializeOwned;
use decor::serde::Serialize;
use decor::{logged, parallel_chunks, timed};

#[parallel_chunks(backend = "processes", reduce = "sum")]
fn total<T: Serialize + DeserializeOwned + Copy + Into<u64> + Send + Sync>(xs: &[T]) -> u64 {
    xs.iter().map(|&x| x.into()).sum()
}

struct Table<T>(Vec<T>);

impl<T: Serialize + DeserializeOwned + Clone + PartialEq + Send + Sync> Table<T> {
    #[parallel_chunks(backend = "processes", reduce = "concat")]
    fn copied(xs: &[T]) -> Vec<T> {
        xs.to_vec()
    }

    #[parallel_chunks(reduce = "sum")]
    fn matches(xs: Vec<T>, needle: &T, also: &Vec<T>) -> usize {
        xs.iter().filter(|x| *x == needle || also.contains(x)).count()
    }

    fn new(rows: Vec<T>) -> Self {
        Table(Self::copied(&rows))
    }
}

#[parallel_chunks(backend = "mpi", reduce = "concat")]
fn lines(text: &String, prefix: &str, weights: &[f32]) -> Vec<String> {
    text.lines()
        .map(|l| format!("{prefix}{l}{}", weights.len()))
        .collect()
}

#[parallel_chunks(backend = "processes", reduce = "concat")]
fn doubled(xs: &Vec<u64>) -> Vec<u64> {
    xs.iter().map(|x| 2 * x).collect()
}

// tracing's `ui/pass/type_shadowing.rs`: the body's `use` shadows the return type's name.
type Foo = ();
enum Bar {
    Foo,
}

#[logged]
fn logged_shadowed() -> Foo {
    use Bar::*;
    let _ = Foo;
}

#[timed]
fn timed_shadowed() -> Foo {
    use Bar::*;
    let _ = Foo;
}

#[parallel_chunks(reduce = "sum")]
fn chunk_shadowed(xs: &[u8]) -> usize {
    use Bar::*;
    let _ = Foo;
    xs.len()
}

fn main() {
    assert_eq!(total(&[1u8, 2, 3]), 6);
    assert_eq!(Table::new(vec![1u32, 2]).0, [1, 2]);
    assert_eq!(Table::<u8>::matches(vec![1, 2, 1], &1, &vec![2]), 3);
    assert_eq!(lines(&"a\nb".to_owned(), ">", &[1.0]), [">a1", ">b1"]);
    assert_eq!(doubled(&vec![1, 2]), [2, 4]);
    logged_shadowed();
    timed_shadowed();
    assert_eq!(chunk_shadowed(&[1, 2]), 2);
}
