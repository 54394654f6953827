//! The messages between the parent and a worker process, and their framing.
//!
//! A frame is a little-endian `u32` length followed by that many bytes of one [`Message`] in
//! `postcard`. Every frame is checked before anything is allocated: a length of zero or above
//! [`MAX_FRAME`] is an error, a stream that ends inside a frame is [`DecodeError::Truncated`], bytes
//! that are not exactly one message are [`DecodeError::Malformed`]. Nothing a peer sends can make
//! the decoder panic, allocate more than `MAX_FRAME`, or wait for bytes that were never announced.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// The largest frame accepted, in bytes (1 GiB): large inputs go through shared memory.
pub(crate) const MAX_FRAME: usize = 1 << 30;

/// The largest chunk data, arguments or result one message may carry: the frame, less room for
/// the rest of the message.
pub(crate) const MAX_PAYLOAD: usize = MAX_FRAME - (1 << 20);

/// Identifies the handshake of this protocol.
pub(crate) const MAGIC: u64 = 0x6465_636f_725f_7731; // "decor_w1"
/// Bumped on any change of [`Message`].
pub(crate) const VERSION: u32 = 12;

/// `Vec<u8>` fields as bytes, one copy each way (serde's own `Vec<u8>` goes element by element).
/// Written here rather than taken from `serde_bytes`, whose `Deserialize` impls would then be
/// listed in every user's "does not implement `Deserialize`" error.
mod bytes {
    use serde::Serializer;
    use serde::de::{Deserializer, Error, SeqAccess, Visitor};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Bytes;
        impl<'de> Visitor<'de> for Bytes {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(Bytes)
    }
}

/// Where the data of a chunk's cut parameter is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ChunkData {
    /// In this message, encoded with `postcard`.
    Inline(#[serde(with = "bytes")] Vec<u8>),
    /// In this message, the bytes themselves (plain data or UTF-8), not encoded.
    Bytes(#[serde(with = "bytes")] Vec<u8>),
    /// In a shared-memory region of the parent: `len` bytes at `offset`.
    Shared {
        /// The parent's file descriptor of the region (a memfd): what the parent sends with a
        /// [`Message::Region`] to a worker that does not have it yet.
        fd: i32,
        /// The region's process-unique id, to reuse a mapping.
        id: u64,
        /// The region's size.
        size: u64,
        /// Where the chunk starts.
        offset: u64,
        /// The chunk's length in bytes.
        len: u64,
        /// The bytes are `postcard` (a large encoded value placed here to spare the socket),
        /// not the data itself.
        encoded: bool,
    },
    /// Raw bytes of plain data, sent by the transport right after this message (MPI).
    Raw {
        /// Their length.
        len: u64,
    },
    /// A range of a file the receiver maps itself (MPI ranks: a `MappedFile` on a shared
    /// filesystem, or a copy at the same path): never sent.
    File {
        path: String,
        /// The file's length and modification time (ns since the Unix epoch) where it was
        /// opened: a rank whose file differs refuses the chunk.
        size: u64,
        modified_ns: u64,
        offset: u64,
        len: u64,
    },
}

/// A level on the wire: `0` off, then `1` error to `5` trace, the order `LevelFilter` uses.
pub(crate) fn level_to_wire(level: &tracing_core::Level) -> u8 {
    match *level {
        tracing_core::Level::ERROR => 1,
        tracing_core::Level::WARN => 2,
        tracing_core::Level::INFO => 3,
        tracing_core::Level::DEBUG => 4,
        tracing_core::Level::TRACE => 5,
    }
}

/// The level a wire number stands for; anything above 5 reads as trace.
pub(crate) fn level_from_wire(n: u8) -> tracing_core::Level {
    match n {
        0 | 1 => tracing_core::Level::ERROR,
        2 => tracing_core::Level::WARN,
        3 => tracing_core::Level::INFO,
        4 => tracing_core::Level::DEBUG,
        _ => tracing_core::Level::TRACE,
    }
}

/// A level filter on the wire: `0` when everything is off.
pub(crate) fn filter_to_wire(filter: tracing_core::LevelFilter) -> u8 {
    filter.into_level().as_ref().map_or(0, level_to_wire)
}

impl ChunkData {
    /// The bytes this carries in the message itself.
    pub(crate) fn inline_len(&self) -> usize {
        match self {
            ChunkData::Inline(bytes) | ChunkData::Bytes(bytes) => bytes.len(),
            ChunkData::Shared { .. } | ChunkData::Raw { .. } | ChunkData::File { .. } => 0,
        }
    }
}

/// A field of a forwarded event, typed as the body recorded it, so that the parent's subscriber
/// sees a number as a number (`"distinct":2087` in JSON, not `"2087"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum FieldValue {
    /// A string.
    Text(String),
    /// Anything recorded with `Debug` / `Display`, formatted.
    Shown(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
}

/// One message, either way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Message {
    /// Parent → worker, first: proves the parent made the channel.
    Hello {
        magic: u64,
        version: u32,
        token: u128,
        parent_pid: u32,
        /// The most verbose level the parent's subscriber wants (0 = off … 5 = trace).
        max_level: u8,
        /// The parent's build identity: a worker of another build cannot run its entries.
        #[serde(with = "bytes")]
        build: Vec<u8>,
        /// The descriptor the worker finds its message rings on (a memory file).
        rings: i32,
    },
    /// Worker → parent, after a good `Hello`: its pid and its build identity.
    Ready {
        pid: u32,
        #[serde(with = "bytes")]
        build: Vec<u8>,
    },
    /// Parent → worker: run one chunk of `function`, whose entry is at offset `entry` from the
    /// executable's base (see [`entry`](super::entry)).
    Run {
        /// The function's name, for messages.
        function: String,
        entry: u64,
        /// `map_remote`: the offset of the user's function the entry calls; 0 for none.
        body: u64,
        chunk: u32,
        chunks: u32,
        /// Which attempt at the chunk this is (0 for the first), and the retries allowed.
        attempt: u32,
        retries: u32,
        /// The most verbose level the parent's subscribers want now.
        max_level: u8,
        /// The parameters other than the cut one, in order.
        args: Vec<ChunkData>,
        data: ChunkData,
        /// The shared-memory regions the parent still has: the worker unmaps any other.
        live: Vec<u64>,
    },
    /// Parent → worker: a shared-memory region, whose descriptor comes with this frame's first
    /// byte (`SCM_RIGHTS`); sent once per worker, before the first chunk that uses it.
    Region { id: u64, size: u64 },
    /// Rank 0 → an MPI rank: leave the job (processes end when their channel closes).
    Stop,
    /// Worker → parent: an event from a chunk body.
    Event {
        level: u8,
        target: String,
        fields: Vec<(String, FieldValue)>,
    },
    /// Worker → parent: the chunk's result, encoded with `postcard`, and when its body ran;
    /// `retry`: the result is an `Err` that `retry_if` accepts, as it reads in a log (the parent
    /// runs the chunk again if `retries` has attempts left, else keeps this result).
    Done {
        // As bytes, one copy: serde's own `Vec<u8>` goes byte by byte (about 1.5 ns each, 60 ms
        // a call for 40 MB of results).
        #[serde(with = "bytes")]
        result: Vec<u8>,
        ran: Ran,
        retry: Option<String>,
    },
    /// Worker → parent: the chunk's body panicked.
    Panicked { message: String, ran: Ran },
    /// Worker → parent: this executable has no such function.
    Unknown { function: String },
    /// Worker → parent: the arguments could not be decoded.
    BadInput { message: String },
}

/// When a chunk's body ran in the worker: so that traces draw it where and when it ran, not when
/// the parent read its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ran {
    /// Wall-clock start, in nanoseconds since the Unix epoch (one clock for every process of
    /// the machine).
    pub(crate) start_unix_ns: u64,
    /// How long the body ran, by the worker's monotonic clock.
    pub(crate) busy_ns: u64,
}

impl Ran {
    /// Runs `body`, timing it.
    pub(crate) fn time<R>(body: impl FnOnce() -> R) -> (R, Ran) {
        let start_unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let started = std::time::Instant::now();
        let r = body();
        let busy_ns = started.elapsed().as_nanos() as u64;
        (
            r,
            Ran {
                start_unix_ns,
                busy_ns,
            },
        )
    }
}

/// Why bytes are not a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The announced length is zero or above [`MAX_FRAME`].
    BadLength(u64),
    /// The stream ended inside a frame.
    Truncated { wanted: usize, got: usize },
    /// The frame's bytes are not exactly one message.
    Malformed(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::BadLength(n) => {
                write!(f, "frame length {n} is not in 1..={MAX_FRAME}")
            }
            DecodeError::Truncated { wanted, got } => {
                write!(f, "stream ended inside a frame: {got} of {wanted} bytes")
            }
            DecodeError::Malformed(e) => write!(f, "malformed message: {e}"),
        }
    }
}

/// The frame of `msg`, or an error if it is over [`MAX_FRAME`].
pub(crate) fn encode(msg: &Message) -> io::Result<Vec<u8>> {
    let out = vec![0u8; 4];
    let mut body = postcard::to_extend(msg, out).map_err(io::Error::other)?;
    let len = body.len() - 4;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a message of {len} bytes is over the {MAX_FRAME} bytes a frame may carry"),
        ));
    }
    body[..4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(body)
}

/// Decodes the first frame of `buf`: the message and the bytes it used.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn decode(buf: &[u8]) -> Result<(Message, usize), DecodeError> {
    if buf.len() < 4 {
        return Err(DecodeError::Truncated {
            wanted: 4,
            got: buf.len(),
        });
    }
    let len = check_length(u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]))?;
    let body = buf.get(4..4 + len).ok_or(DecodeError::Truncated {
        wanted: len,
        got: buf.len() - 4,
    })?;
    Ok((parse(body)?, 4 + len))
}

fn check_length(len: u32) -> Result<usize, DecodeError> {
    let len = len as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(DecodeError::BadLength(len as u64));
    }
    Ok(len)
}

fn parse(body: &[u8]) -> Result<Message, DecodeError> {
    match postcard::take_from_bytes::<Message>(body) {
        Ok((msg, [])) => Ok(msg),
        Ok((_, rest)) => Err(DecodeError::Malformed(format!(
            "{} bytes after the message",
            rest.len()
        ))),
        Err(e) => Err(DecodeError::Malformed(e.to_string())),
    }
}

/// Reading frames from a stream.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The stream ended cleanly between frames.
    Closed,
    /// Reading failed (a timeout included).
    Io(io::Error),
    /// The bytes are not a message.
    Decode(DecodeError),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Closed => f.write_str("the channel closed"),
            ReadError::Io(e) => write!(f, "reading failed: {e}"),
            ReadError::Decode(e) => e.fmt(f),
        }
    }
}

/// Reads one frame; never allocates more than the checked length.
pub(crate) fn read(r: &mut impl Read) -> Result<Message, ReadError> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Err(ReadError::Closed),
            Ok(0) => {
                return Err(ReadError::Decode(DecodeError::Truncated { wanted: 4, got }));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    let len = check_length(u32::from_le_bytes(head)).map_err(ReadError::Decode)?;
    let mut body = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match r.read(&mut body[got..]) {
            Ok(0) => {
                return Err(ReadError::Decode(DecodeError::Truncated {
                    wanted: len,
                    got,
                }));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    parse(&body).map_err(ReadError::Decode)
}

/// Writes one frame.
pub(crate) fn write(w: &mut impl Write, msg: &Message) -> io::Result<()> {
    w.write_all(&encode(msg)?)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<Message> {
        vec![
            Message::Hello {
                magic: MAGIC,
                version: VERSION,
                token: u128::MAX - 7,
                parent_pid: 42,
                max_level: 3,
                build: vec![1, 2, 3],
                rings: 4,
            },
            Message::Ready {
                pid: 7,
                build: vec![9; 20],
            },
            Message::Run {
                function: "app::日本".into(),
                entry: 0x1234,
                body: 0,
                chunk: 3,
                chunks: 8,
                attempt: 1,
                retries: 2,
                max_level: 5,
                args: vec![ChunkData::Inline(vec![1, 2, 3]), ChunkData::Bytes(vec![4])],
                data: ChunkData::Shared {
                    fd: 9,
                    id: 1,
                    size: 4096,
                    offset: 64,
                    len: 128,
                    encoded: false,
                },
                live: vec![1, 2],
            },
            Message::Event {
                level: 3,
                target: "app".into(),
                fields: vec![
                    ("message".into(), FieldValue::Text("hi".into())),
                    ("n".into(), FieldValue::U64(7)),
                ],
            },
            Message::Done {
                result: vec![],
                ran: Ran {
                    start_unix_ns: 1_790_000_000_000_000_000,
                    busy_ns: 12,
                },
                retry: None,
            },
            Message::Done {
                result: vec![1, 2],
                ran: Ran {
                    start_unix_ns: 1,
                    busy_ns: 2,
                },
                retry: Some("Busy(429)".into()),
            },
            Message::Panicked {
                message: "boom".into(),
                ran: Ran {
                    start_unix_ns: 0,
                    busy_ns: u64::MAX,
                },
            },
        ]
    }

    #[test]
    fn messages_round_trip_through_frames_and_streams() {
        let mut stream = Vec::new();
        for m in sample() {
            let frame = encode(&m).unwrap();
            assert_eq!(decode(&frame).unwrap(), (m.clone(), frame.len()));
            write(&mut stream, &m).unwrap();
        }
        let mut r = stream.as_slice();
        for m in sample() {
            assert_eq!(read(&mut r).unwrap(), m);
        }
        assert!(matches!(read(&mut r), Err(ReadError::Closed)));
    }

    #[test]
    fn lengths_are_checked_before_reading_the_body() {
        let huge = (MAX_FRAME as u32 + 1).to_le_bytes();
        assert_eq!(
            decode(&huge),
            Err(DecodeError::BadLength(MAX_FRAME as u64 + 1))
        );
        assert!(matches!(
            read(&mut &huge[..]),
            Err(ReadError::Decode(DecodeError::BadLength(_)))
        ));
        assert!(matches!(
            read(&mut &[0u8, 0, 0, 0][..]),
            Err(ReadError::Decode(DecodeError::BadLength(0)))
        ));
    }

    #[test]
    fn trailing_bytes_in_a_frame_are_malformed() {
        let mut frame = encode(&Message::Done {
            result: vec![1],
            ran: Ran {
                start_unix_ns: 1,
                busy_ns: 2,
            },
            retry: None,
        })
        .unwrap();
        frame.push(0);
        let len = (frame.len() - 4) as u32;
        frame[..4].copy_from_slice(&len.to_le_bytes());
        assert!(matches!(decode(&frame), Err(DecodeError::Malformed(_))));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

        /// Arbitrary bytes: an error or a message, never a panic, and never a message that
        /// claims more bytes than there are.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok((_, used)) = decode(&bytes) {
                prop_assert!(used <= bytes.len());
            }
            let _ = read(&mut bytes.as_slice());
        }

        /// A valid frame cut anywhere is truncated, never misread.
        #[test]
        fn truncated_frames_are_reported(which in 0usize..6, cut in 0usize..1000) {
            let frame = encode(&sample()[which]).unwrap();
            let cut = cut % frame.len();
            let r = decode(&frame[..cut]);
            let ok = matches!(r, Err(DecodeError::Truncated { .. }));
            prop_assert!(ok, "{:?}", r);
            let r = read(&mut &frame[..cut]);
            let ok = matches!(
                r,
                Err(ReadError::Decode(DecodeError::Truncated { .. }) | ReadError::Closed)
            );
            prop_assert!(ok, "{:?}", r);
        }

        /// A valid frame with any one byte of its body changed decodes to an error or to a
        /// message, and never panics.
        #[test]
        fn corrupted_frames_never_panic(which in 0usize..6, at in 4usize..200, value in any::<u8>()) {
            let mut frame = encode(&sample()[which]).unwrap();
            let at = 4 + (at - 4) % (frame.len() - 4);
            frame[at] = value;
            let _ = decode(&frame);
        }
    }
}
