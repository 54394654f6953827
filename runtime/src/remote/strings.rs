//! Slices of `String`s cross to worker processes as one table per chunk, written in parallel
//! straight into shared memory: a count, each string's end, then the strings' bytes, one after
//! another. Encoding is then a copy of the bytes, and a worker makes each `String` with one
//! allocation and one copy, where `postcard` would read a length and check the UTF-8 of each.
//!
//! The table's layout, all numbers `u32` little-endian: `n`, then `n` ends (the offset after
//! each string, from the start of the bytes), then the bytes. A chunk whose strings hold 4 GiB
//! or more goes through serde instead.

use std::mem::size_of;

use super::primitive::same_as;

/// The table's size for `xs`, if its offsets fit in `u32`.
pub(crate) fn table_len(xs: &[String]) -> Option<usize> {
    let bytes: usize = xs.iter().map(String::len).sum();
    u32::try_from(bytes).ok()?;
    u32::try_from(xs.len()).ok()?;
    Some(size_of::<u32>() * (1 + xs.len()) + bytes)
}

/// Writes the table of `xs` into `out`, which is [`table_len`] bytes long.
pub(crate) fn write_table(xs: &[String], out: &mut [u8]) {
    let (head, mut bytes) = out.split_at_mut(size_of::<u32>() * (1 + xs.len()));
    let mut ends = head.chunks_exact_mut(size_of::<u32>());
    let mut put = |x: usize| {
        let at = ends.next().expect("room for every end");
        at.copy_from_slice(&(x as u32).to_le_bytes());
    };
    put(xs.len());
    let mut end = 0;
    for s in xs {
        let (here, rest) = bytes.split_at_mut(s.len());
        here.copy_from_slice(s.as_bytes());
        bytes = rest;
        end += s.len();
        put(end);
    }
}

/// The table of `xs` in a buffer of its own, if its offsets fit in `u32`.
pub(crate) fn table(xs: &[String]) -> Option<Vec<u8>> {
    let mut out = vec![0; table_len(xs)?];
    write_table(xs, &mut out);
    Some(out)
}

/// The strings of a table [`write_table`] wrote; an error for a table that does not hold
/// together (a count, an end or a length out of its bounds).
///
/// The bytes are not checked as UTF-8 again: the parent copied them from `String`s of the same
/// function's call (the entry is found by offset in the same build) into a scratch region that
/// nothing else writes while the call runs. Each end is checked to lie on a char boundary, which
/// catches a table read at the wrong place.
pub(crate) fn read_table(table: &[u8]) -> Result<Vec<String>, String> {
    let bad = || "a table of strings that does not hold together".to_string();
    let word = |k: usize| -> Option<usize> {
        let at = table.get(k * size_of::<u32>()..(k + 1) * size_of::<u32>())?;
        Some(u32::from_le_bytes(at.try_into().ok()?) as usize)
    };
    let n = word(0).ok_or_else(bad)?;
    let start = n
        .checked_add(1)
        .and_then(|w| w.checked_mul(size_of::<u32>()))
        .filter(|&s| s <= table.len())
        .ok_or_else(bad)?;
    let bytes = &table[start..];
    let mut out = Vec::with_capacity(n);
    let mut from = 0;
    for k in 1..=n {
        let end = word(k).ok_or_else(bad)?;
        let s = bytes.get(from..end).ok_or_else(bad)?;
        if bytes.get(end).is_some_and(|&b| (b as i8) < -0x40) {
            return Err(bad());
        }
        // SAFETY: copied from a `String` by the parent (see above); the range ends on a char
        // boundary and starts where the previous one ended (or at 0).
        out.push(unsafe { std::str::from_utf8_unchecked(s) }.to_owned());
        from = end;
    }
    Ok(out)
}

/// `value`'s table when it is a `Vec<String>` (a chunk's result: the parent makes each
/// `String` with one allocation and one copy, as it lands); `None` for any other type.
pub(crate) fn result_table<T>(value: &T) -> Option<Result<Vec<u8>, String>> {
    let xs = same_as::<T, Vec<String>>()?.ref_to_p(value);
    Some(table(xs).ok_or_else(|| "a result of strings of 4 GiB or more".to_string()))
}

/// The result [`result_table`] wrote, as `R`, when `R` is `Vec<String>`; `None` for any other
/// type.
pub(crate) fn from_result_table<R>(table: &[u8]) -> Option<Result<R, String>> {
    let same = same_as::<R, Vec<String>>()?;
    Some(read_table(table).map(|v| same.value_to_t(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(xs: &[String]) -> Vec<u8> {
        super::table(xs).unwrap()
    }

    #[test]
    fn strings_come_back_as_they_were() {
        let xs: Vec<String> = ["", "São Paulo", "Řež", "", "a\nb"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(read_table(&table(&xs)).unwrap(), xs);
        assert_eq!(read_table(&table(&[])).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn results_of_strings_cross_as_tables_and_nothing_else_does() {
        let xs = vec!["São".to_string(), String::new()];
        let table = result_table(&xs).unwrap().unwrap();
        assert_eq!(
            from_result_table::<Vec<String>>(&table).unwrap().unwrap(),
            xs
        );
        assert!(result_table(&7u32).is_none());
        assert!(from_result_table::<Vec<u8>>(&table).is_none());
    }

    #[test]
    fn a_table_that_does_not_hold_together_is_an_error() {
        let xs = vec!["São".to_string(), "Paulo".to_string()];
        let good = table(&xs);
        assert!(read_table(&good[..good.len() - 1]).is_err(), "cut short");
        assert!(read_table(&[9, 0, 0, 0]).is_err(), "a count past the end");
        assert!(read_table(&[]).is_err(), "no count");
        let mut inside = good.clone();
        inside[4] = 2; // "São" ending inside the ã
        assert!(read_table(&inside).is_err());
        let mut backwards = good;
        backwards[8] = 1; // "Paulo" ending before it starts
        assert!(read_table(&backwards).is_err());
    }
}
