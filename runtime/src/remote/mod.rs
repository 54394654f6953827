//! The remote path, written once for every transport that runs chunks outside this process:
//! what a chunk is on the wire, how a worker finds and runs its function, how events come back.
//!
//! - [`protocol`]: the messages and their frames;
//! - [`entry`]: entries by address (offsets within this executable, the build identity);
//! - [`outgoing`]: the parent's side: what runs, the parameters and chunks as they cross, the
//!   results decoded;
//! - [`input`]: the worker's side: the pieces an entry reads;
//! - [`primitive`]: slices of numbers among serde values, found out by `TypeId` to cross as bytes;
//! - [`strings`]: slices of `String`s, crossing as one table of ends and bytes;
//! - [`answer`]: running one chunk where it arrived;
//! - [`events`]: tracing events of chunk bodies, forwarded and re-emitted.
//!
//! The transports sit above it as siblings, none importing another:
//! [`backends::processes`](crate::backends) (a pool of worker processes over Unix sockets and
//! shared memory) and `backends::mpi` (the ranks of an `mpirun` job). Shared memory itself is
//! [`shm`](crate::shm), below this module. A new transport is one module that sends
//! [`protocol::Message::Run`] and hands what arrives to [`answer::answer`].

pub(crate) mod answer;
pub mod by_hand;
pub(crate) mod entry;
pub(crate) mod events;
pub(crate) mod input;
pub(crate) mod outgoing;
pub(crate) mod primitive;
pub(crate) mod protocol;
pub(crate) mod strings;
