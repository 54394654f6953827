//! Every function shape both attributes accept.

use decor::{logged, timed};

#[derive(Debug, Clone, Default)]
struct Store {
    items: Vec<u32>,
}

trait Named {
    fn name(&self) -> String;

    #[timed]
    #[logged]
    fn greeting(&self) -> String {
        format!("hello {}", self.name())
    }
}

impl Named for Store {
    #[logged(ret = false)]
    fn name(&self) -> String {
        "store".into()
    }
}

impl Store {
    #[timed]
    #[logged]
    fn new() -> Self {
        Store::default()
    }

    #[timed]
    #[logged]
    fn push(&mut self, x: u32) -> &mut Self {
        self.items.push(x);
        self
    }

    #[timed]
    #[logged]
    fn first(&self) -> Option<&u32> {
        self.items.first()
    }

    #[timed]
    #[logged]
    fn into_items(self) -> Vec<u32> {
        self.items
    }

    #[logged(skip(self))]
    #[timed(level = "trace")]
    fn iter(&self) -> impl Iterator<Item = &u32> + '_ {
        self.items.iter()
    }

    #[decor::timed]
    #[decor::logged]
    async fn total(&self) -> u32 {
        self.items.iter().sum()
    }
}

#[timed]
#[logged]
fn generic<T, U: Into<u64> + std::fmt::Debug>(x: T, y: U) -> u64
where
    T: std::fmt::Debug + Into<u64>,
{
    x.into() + y.into()
}

#[timed]
#[logged]
fn with_question_mark(s: &str) -> Result<u8, Box<dyn std::error::Error>> {
    let n: u8 = s.parse()?;
    Ok(n)
}

#[timed]
#[logged]
async fn async_question_mark(s: &str) -> Result<u8, std::num::ParseIntError> {
    let n: u8 = s.parse()?;
    Ok(n)
}

#[timed]
#[logged]
fn pattern_params((a, b): (u8, u8), _: u8, mut c: u8) -> u8 {
    c += a + b;
    c
}

#[timed]
#[logged]
fn early_return(x: i64) -> &'static str {
    if x < 0 {
        return "neg";
    }
    "pos"
}

#[timed]
#[logged]
fn impl_arg(x: impl std::fmt::Debug) -> String {
    format!("{x:?}")
}

#[timed]
#[logged]
fn recursive(n: u64) -> u64 {
    if n < 2 { n } else { recursive(n - 1) + recursive(n - 2) }
}

/// # Safety
/// Always safe; the attribute must keep `unsafe`.
#[timed]
#[logged]
pub unsafe fn unsafe_fn(x: u8) -> u8 {
    x
}

fn main() {
    let mut s = Store::new();
    s.push(1).push(2);
    let _ = s.first();
    let _ = s.iter().count();
    let _ = s.greeting();
    let _ = s.clone().into_items();
    let _ = s.total();
    let _ = generic(1u8, 2u32);
    let _ = with_question_mark("7");
    let _ = async_question_mark("7");
    let _ = pattern_params((1, 2), 3, 4);
    let _ = early_return(1);
    let _ = impl_arg(5);
    let _ = recursive(5);
    // SAFETY: trivially safe.
    let _ = unsafe { unsafe_fn(1) };
}
