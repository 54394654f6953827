//! Helpers shared by the integration tests: a subscriber that keeps what it sees.
//!
//! [`capture`] runs a closure under a subscriber that records every span and event, with their
//! fields as text, so tests assert on what a user's subscriber would receive.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Field values by name, as text: strings as they are, everything else by `Debug`.
pub type Fields = BTreeMap<String, String>;

/// An event as a subscriber saw it.
#[derive(Debug, Clone)]
pub struct SeenEvent {
    /// Its level.
    pub level: Level,
    /// Its target.
    pub target: String,
    /// Its fields, `message` included.
    pub fields: Fields,
    /// Names of the spans it happened in, outermost first.
    pub scope: Vec<String>,
}

/// A span as a subscriber saw it.
#[derive(Debug, Clone)]
pub struct SeenSpan {
    /// Its name.
    pub name: String,
    /// Its level.
    pub level: Level,
    /// Its target.
    pub target: String,
    /// Its fields as given when it opened, and any recorded later.
    pub fields: Fields,
    /// Name of its parent span, if any.
    pub parent: Option<String>,
}

/// Everything seen during [`capture`].
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Events, in order.
    pub events: Vec<SeenEvent>,
    /// Spans, in order of creation.
    pub spans: Vec<SeenSpan>,
}

impl Seen {
    /// Events whose message contains `text`.
    pub fn events_with(&self, text: &str) -> Vec<&SeenEvent> {
        self.events
            .iter()
            .filter(|e| e.fields.get("message").is_some_and(|m| m.contains(text)))
            .collect()
    }

    /// The span called `name`; panics if there is not exactly one.
    pub fn span(&self, name: &str) -> &SeenSpan {
        let found: Vec<_> = self.spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "spans called {name}: {:#?}", self.spans);
        found[0]
    }

    /// Whether `text` appears anywhere: any field of any span or event.
    pub fn mentions(&self, text: &str) -> bool {
        let in_fields = |f: &Fields| f.iter().any(|(k, v)| k.contains(text) || v.contains(text));
        self.events.iter().any(|e| in_fields(&e.fields))
            || self.spans.iter().any(|s| in_fields(&s.fields))
    }
}

#[derive(Default)]
struct FieldText(Fields);

impl Visit for FieldText {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Seen>>);

struct SpanIndex(usize);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = FieldText::default();
        attrs.record(&mut fields);
        let span = ctx.span(id).expect("new span exists");
        let parent = span.parent().map(|p| p.name().to_owned());
        let meta = attrs.metadata();
        let mut seen = self.0.lock().unwrap();
        span.extensions_mut().insert(SpanIndex(seen.spans.len()));
        seen.spans.push(SeenSpan {
            name: meta.name().to_owned(),
            level: *meta.level(),
            target: meta.target().to_owned(),
            fields: fields.0,
            parent,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut fields = FieldText::default();
        values.record(&mut fields);
        let span = ctx.span(id).expect("recorded span exists");
        let ext = span.extensions();
        let index = ext.get::<SpanIndex>().expect("indexed at creation").0;
        self.0.lock().unwrap().spans[index].fields.extend(fields.0);
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = FieldText::default();
        event.record(&mut fields);
        let scope = ctx
            .event_scope(event)
            .map(|s| s.from_root().map(|span| span.name().to_owned()).collect())
            .unwrap_or_default();
        let meta = event.metadata();
        self.0.lock().unwrap().events.push(SeenEvent {
            level: *meta.level(),
            target: meta.target().to_owned(),
            fields: fields.0,
            scope,
        });
    }
}

/// Keeps one dispatcher alive for the life of the test binary that answers every callsite
/// "sometimes", so no callsite's interest can be cached as "never".
///
/// `tracing-core` computes a callsite's interest from the dispatchers alive when the callsite is
/// first hit. A test thread hitting it while no scoped subscriber exists, racing with another
/// thread's `with_default`, can cache "never", and the other test then misses the span (seen as a
/// flaky `chunk` span count). With this dispatcher alive, the worst a race gives is "sometimes":
/// each site asks the current subscriber, which is what tests need.
fn keep_interest_open() {
    struct Sometimes;
    impl Subscriber for Sometimes {
        fn register_callsite(
            &self,
            _: &'static tracing::Metadata<'static>,
        ) -> tracing::subscriber::Interest {
            tracing::subscriber::Interest::sometimes()
        }
        fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
            Some(tracing::level_filters::LevelFilter::OFF)
        }
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            false
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, _: &tracing::Event<'_>) {}
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
    static KEEPER: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
    KEEPER.get_or_init(|| tracing::Dispatch::new(Sometimes));
}

/// Runs `f` with a subscriber that records everything at every level, on this thread.
pub fn capture<R>(f: impl FnOnce() -> R) -> (R, Seen) {
    capture_at(tracing::level_filters::LevelFilter::TRACE, f)
}

/// Runs `f` with a subscriber that records what is at `max` or more severe, on this thread.
/// The filter is the subscriber's own, as `RUST_LOG` through `EnvFilter` or
/// `fmt().with_max_level` make it: what it filters out is never created.
pub fn capture_at<R>(max: tracing::level_filters::LevelFilter, f: impl FnOnce() -> R) -> (R, Seen) {
    keep_interest_open();
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry()
        .with(max)
        .with(recorder.clone());
    let r = tracing::subscriber::with_default(subscriber, f);
    let seen = recorder.0.lock().unwrap().clone();
    (r, seen)
}

/// Runs `f` on a thread of its own and returns its value, or panics naming `what` if it takes
/// longer than `limit`: a test of something that could hang fails instead.
pub fn within<R: Send + 'static>(
    limit: std::time::Duration,
    what: &str,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(r)) => r,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{what}: still running after {limit:?} (a hang)"),
    }
}

/// Runs `cmd` to its end and returns its output, or kills it and panics if it runs longer than
/// `limit`.
pub fn output_within(
    cmd: &mut std::process::Command,
    limit: std::time::Duration,
) -> std::process::Output {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the command starts");
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let _ = out.read_to_end(&mut o);
        let _ = err.read_to_end(&mut e);
        (o, e)
    });
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the command can be waited on") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?}: still running after {limit:?} (a hang)");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let (stdout, stderr) = reader.join().expect("the reader ends");
    std::process::Output {
        status,
        stdout,
        stderr,
    }
}

/// Takes turns among the tests of one binary that share its process pool and kill, signal or
/// count its workers.
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static POOL: Mutex<()> = Mutex::new(());
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A copy of the running test binary in `dir` with its build id changed: the same program as
/// another build of it (an older copy on another host, a rebuilt binary), for the checks that
/// refuse such a worker or rank.
pub fn another_build_of_this_program(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let mut bytes = std::fs::read(std::env::current_exe().expect("this test binary"))
        .expect("this test binary is readable");
    let id = decor::__private::remote::build_id();
    let at = bytes
        .windows(id.len())
        .position(|w| w == id)
        .expect("the build id is in the file");
    for b in &mut bytes[at..at + id.len()] {
        *b = !*b;
    }
    let other = dir.join("another-build");
    std::fs::write(&other, &bytes).expect("a copy is written");
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o755))
        .expect("the copy is executable");
    other
}

/// A call whose messages overflow the shared-memory rings both ways, on processes and on MPI:
/// each chunk logs more than a ring holds and answers more than a ring record holds, and
/// crosses itself on the other channel (the `notes` make its `Run` larger than a ring takes).
pub mod floods {
    use super::Seen;

    /// The cut input: 8,000 words, 4 chunks of 2,000.
    pub fn words() -> Vec<String> {
        (0..8000).map(|i| format!("w{i:09}")).collect()
    }

    /// About 40 KB with every chunk: over the 32 KiB a `Run` takes through a ring.
    pub fn notes() -> Vec<String> {
        (0..2000).map(|i| format!("note {i:014}")).collect()
    }

    /// The body: 1,500 events of about 200 bytes, and 100,000 numbers for an answer.
    pub fn body(words: &[String], notes: &[String]) -> Vec<u64> {
        assert_eq!(notes.len(), 2000);
        let first: u64 = words[0].trim_start_matches('w').parse().unwrap();
        let padding = "x".repeat(150);
        for seq in 0..1500u64 {
            tracing::info!(chunk = first, seq, padding, "flood");
        }
        (0..100_000u64).map(|i| first * 1_000_000 + i).collect()
    }

    /// What a user must see: every answer whole and in chunk order, and every chunk's events in
    /// order inside its span; or what is wrong.
    pub fn check(out: &[u64], seen: &Seen) -> Result<(), String> {
        let firsts: Vec<u64> = (0..4).map(|k| k * 2000).collect();
        let expected: Vec<u64> = firsts
            .iter()
            .flat_map(|f| (0..100_000u64).map(move |i| f * 1_000_000 + i))
            .collect();
        if out != expected {
            return Err("the answers are not whole and in chunk order".into());
        }
        let events = seen.events_with("flood");
        if events.len() != 4 * 1500 {
            return Err(format!("{} events, not 6000", events.len()));
        }
        for f in firsts {
            let seqs: Vec<u64> = events
                .iter()
                .filter(|e| e.fields["chunk"] == f.to_string())
                .map(|e| e.fields["seq"].parse().unwrap())
                .collect();
            if seqs != (0..1500).collect::<Vec<_>>() {
                return Err(format!(
                    "the events of the chunk starting at {f} are out of order"
                ));
            }
        }
        match events
            .iter()
            .find(|e| e.scope != ["parallel_chunks", "chunk"])
        {
            Some(e) => Err(format!("an event outside its chunk's span: {:?}", e.scope)),
            None => Ok(()),
        }
    }
}
