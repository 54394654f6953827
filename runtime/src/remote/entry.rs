//! Entries by address: how a worker finds the code the parent asks for, with no registry.
//!
//! A worker process or MPI rank runs the same executable as the parent, so a function's offset
//! from the executable's load address is the same in both (address-space randomisation moves the
//! base, not offsets). The parent sends the offset of an [`EntryFn`] (and, for
//! [`Plan::map_remote`](crate::Plan::map_remote), of the user's function); the worker adds its own
//! base and calls it. Whatever function the parent can call, the worker can run, generic and
//! associated ones included, and two functions never run each other's body: an address is one
//! monomorphized function, never a name.
//!
//! An offset is a jump target, so it is trusted only from the parent's private channel (a socket
//! it proved with a random token, or rank 0), only when both sides are one build (the ELF build
//! id, else a hash of the code, compared at the handshake), and only when it falls inside the
//! executable's code. Code in a shared library has no fixed offset from the executable: such a
//! function is refused on the parent's side with a message saying so.

use std::sync::OnceLock;

use super::input::ChunkInput;

/// What a worker calls to run one chunk: decode the input, run the body, encode the result.
/// `Err` is a message for input that could not be decoded.
pub type EntryFn = fn(&ChunkInput<'_>) -> Result<Vec<u8>, String>;

/// The executable's code as loaded in this process: its load address, its executable ranges and
/// its build identity.
struct Image {
    base: usize,
    code: Vec<(usize, usize)>,
    build: Vec<u8>,
}

fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(read_image)
}

/// The identity of this build: the ELF build id when the linker wrote one, else a hash of the
/// executable's code. Equal in the parent and its workers, different for another build.
pub(crate) fn build_id() -> &'static [u8] {
    &image().build
}

/// The offset a worker adds to its own base to reach `addr`, if `addr` is code of this
/// executable (not of a shared library).
pub(crate) fn offset_of(addr: usize, what: &str) -> Result<u64, String> {
    let img = image();
    if !img.code.iter().any(|&(s, e)| addr >= s && addr < e) {
        return Err(format!(
            "{what} is not in the code of this executable (is it in a shared library?): worker processes and ranks run the executable, so it cannot run there; use backend = \"threads\""
        ));
    }
    Ok((addr - img.base) as u64)
}

/// The address `offset` stands for here, if it falls inside this executable's code.
fn address_of(offset: u64) -> Option<usize> {
    let img = image();
    let addr = img.base.checked_add(usize::try_from(offset).ok()?)?;
    img.code
        .iter()
        .any(|&(s, e)| addr >= s && addr < e)
        .then_some(addr)
}

/// The entry a parent of the same build sent as `offset`, if it falls inside the code.
pub(crate) fn entry_at(offset: u64) -> Option<EntryFn> {
    let addr = address_of(offset)?;
    // SAFETY: the offset came from the parent's private channel (or rank 0) after the build
    // identities matched, so it was taken by `offset_of` from an `EntryFn` of this same code; it
    // is inside the executable's code (checked above).
    Some(unsafe { std::mem::transmute::<usize, EntryFn>(addr) })
}

/// The address of a function the parent sent as `offset` (the user's function of
/// `map_remote`), checked as [`entry_at`] checks an entry.
pub(crate) fn body_at(offset: u64) -> Option<usize> {
    address_of(offset)
}

/// The offset of an entry, for the parent to send.
pub(crate) fn entry_offset(entry: EntryFn, name: &str) -> Result<u64, String> {
    offset_of(entry as usize, &format!("`{name}`"))
}

fn read_image() -> Image {
    struct Found {
        base: usize,
        code: Vec<(usize, usize)>,
        build: Vec<u8>,
        done: bool,
    }
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `dl_iterate_phdr` hands us a valid `info` for the duration of the call, and
        // `data` is the `Found` we passed; the first object it reports is the executable.
        unsafe {
            let found = &mut *data.cast::<Found>();
            if found.done {
                return 1;
            }
            found.done = true;
            let info = &*info;
            found.base = info.dlpi_addr as usize;
            let headers = std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize);
            for h in headers {
                let start = found.base + h.p_vaddr as usize;
                if h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_X != 0 {
                    found.code.push((start, start + h.p_memsz as usize));
                }
                if h.p_type == libc::PT_NOTE && found.build.is_empty() {
                    let notes = std::slice::from_raw_parts(start as *const u8, h.p_memsz as usize);
                    if let Some(id) = gnu_build_id(notes) {
                        found.build = id.to_vec();
                    }
                }
            }
            1
        }
    }
    let mut found = Found {
        base: 0,
        code: Vec::new(),
        build: Vec::new(),
        done: false,
    };
    // SAFETY: the callback only reads what the loader reports, and writes into `found`.
    unsafe { libc::dl_iterate_phdr(Some(each), (&raw mut found).cast()) };
    if found.build.is_empty() {
        found.build = hash_code(&found.code);
    }
    Image {
        base: found.base,
        code: found.code,
        build: found.build,
    }
}

/// The descriptor of an `NT_GNU_BUILD_ID` note in a note segment.
fn gnu_build_id(mut notes: &[u8]) -> Option<&[u8]> {
    const NT_GNU_BUILD_ID: u32 = 3;
    let word = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    let pad = |n: usize| (n + 3) & !3;
    while notes.len() >= 12 {
        let (namesz, descsz, kind) = (
            word(notes, 0)? as usize,
            word(notes, 4)? as usize,
            word(notes, 8)?,
        );
        let name = notes.get(12..12 + namesz)?;
        let desc_at = 12 + pad(namesz);
        let desc = notes.get(desc_at..desc_at + descsz)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" {
            return Some(desc);
        }
        notes = notes.get(desc_at + pad(descsz)..)?;
    }
    None
}

/// A hash of the executable's code, for a build without a build id.
fn hash_code(code: &[(usize, usize)]) -> Vec<u8> {
    use std::hash::Hasher;
    // `DefaultHasher::new()` has fixed keys: the same bytes hash the same in every process.
    let mut h = std::hash::DefaultHasher::new();
    for &(s, e) in code {
        // SAFETY: the range is a loaded, readable segment of this executable.
        h.write(unsafe { std::slice::from_raw_parts(s as *const u8, e - s) });
    }
    h.finish().to_le_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(_: &ChunkInput<'_>) -> Result<Vec<u8>, String> {
        Ok(vec![7])
    }

    #[test]
    fn an_entry_goes_to_its_offset_and_back() {
        let offset = entry_offset(sample, "sample").unwrap();
        let back = entry_at(offset).unwrap();
        assert_eq!(back as usize, sample as EntryFn as usize);
    }

    #[test]
    fn offsets_outside_the_code_are_refused() {
        assert!(entry_at(u64::MAX).is_none());
        let past_the_code = image().code.iter().map(|&(_, e)| e).max().unwrap() - image().base;
        assert!(entry_at(past_the_code as u64).is_none());
        let on_the_heap = Box::new(0u8);
        assert!(offset_of(&*on_the_heap as *const u8 as usize, "a box").is_err());
    }

    #[test]
    fn this_build_has_an_identity() {
        assert!(!build_id().is_empty());
        assert_eq!(build_id(), build_id());
    }
}
