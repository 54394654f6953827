//! Subscribers for the common cases: readable lines on stderr, JSON lines in a file, a Chrome
//! trace event file. Combine any of them; keep the [`TraceGuard`] alive until the end of `main`,
//! it flushes the files when dropped.
//!
//! Every output is filtered by `RUST_LOG` (default `info`), or by [`Trace::filter`].
//!
//! ```no_run
//! fn main() -> Result<(), decor::trace::TraceError> {
//!     let _guard = decor::trace::Trace::new()
//!         .stderr()
//!         .json_file("decor-trace/trace.jsonl")
//!         .chrome_file("decor-trace/trace.chrome.json") // open in Perfetto or chrome://tracing
//!         .init()?;
//!     // ... run the program ...
//!     Ok(())
//! }
//! ```
//!
//! The JSON file has one object per line, as written by `tracing-subscriber`'s JSON formatter:
//! `timestamp`, `level`, `target`, `fields` (with `message`), `span` and `spans` (the enclosing
//! spans with their fields), `threadId`; and one `"close"` event per span when it ends, with
//! `time.busy` and `time.idle` (so a chunk's busy time is in the log).

mod chrome;

use std::fs::File;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};

use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// A layer added with [`Trace::layer`].
pub type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync + 'static>;

#[derive(Default)]
#[must_use = "nothing is set up until `init` is called"]
/// Which outputs to set up; see the [module docs](self).
pub struct Trace {
    stderr: bool,
    json: Option<PathBuf>,
    chrome: Option<PathBuf>,
    filter: Option<String>,
    layers: Vec<BoxedLayer>,
    /// `None`: a progress bar when stderr is a terminal.
    progress: Option<bool>,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace")
            .field("stderr", &self.stderr)
            .field("json", &self.json)
            .field("chrome", &self.chrome)
            .field("filter", &self.filter)
            .field("layers", &self.layers.len())
            .finish()
    }
}

/// Keeps the outputs' writers; flushes and closes the files when dropped.
#[must_use = "dropping the guard at once flushes and stops the file outputs"]
pub struct TraceGuard {
    _json: Option<tracing_appender::non_blocking::WorkerGuard>,
    _chrome: Option<chrome::ChromeGuard>,
}

impl std::fmt::Debug for TraceGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceGuard")
            .field("json", &self._json.is_some())
            .field("chrome", &self._chrome.is_some())
            .finish()
    }
}

/// Why [`Trace::init`] could not set up the outputs.
#[derive(Debug)]
pub enum TraceError {
    /// A trace file could not be created.
    File {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The filter (from `RUST_LOG` or [`Trace::filter`]) does not parse.
    Filter(String),
    /// Another global subscriber is already installed.
    AlreadySet,
}

impl std::fmt::Display for TraceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TraceError::File { path, source } => {
                write!(f, "cannot create trace file {}: {source}", path.display())
            }
            TraceError::Filter(e) => write!(f, "bad trace filter: {e}"),
            TraceError::AlreadySet => {
                f.write_str("a global tracing subscriber is already set; call init once")
            }
        }
    }
}

impl std::error::Error for TraceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TraceError::File { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Trace {
    /// No outputs yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Human-readable lines on stderr (colored on a terminal).
    pub fn stderr(mut self) -> Self {
        self.stderr = true;
        self
    }

    /// JSON lines to `path` (its folder is created), written by a background thread.
    pub fn json_file(mut self, path: impl AsRef<Path>) -> Self {
        self.json = Some(path.as_ref().to_owned());
        self
    }

    /// A Chrome trace event file at `path`: open it in <https://ui.perfetto.dev> or
    /// `chrome://tracing`; one row per thread, spans as bars, events as marks, a `#[timed]` call
    /// as a slice of its duration, and a chunk that ran in a worker process on that process's
    /// row (`decor-process-N`), drawn from when the worker ran it.
    pub fn chrome_file(mut self, path: impl AsRef<Path>) -> Self {
        self.chrome = Some(path.as_ref().to_owned());
        self
    }

    /// Adds a layer of your own (a metrics exporter, a recorder), behind the same filter.
    pub fn layer(mut self, layer: impl Layer<Registry> + Send + Sync + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// `tracing-subscriber` filter directives (`"info,my_crate=debug"`) instead of `RUST_LOG`.
    pub fn filter(mut self, directives: impl Into<String>) -> Self {
        self.filter = Some(directives.into());
        self
    }

    fn env_filter(&self) -> Result<EnvFilter, TraceError> {
        let directives = match &self.filter {
            Some(d) => d.clone(),
            None => std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_else(|_| "info".to_owned()),
        };
        EnvFilter::builder()
            .parse(directives)
            .map_err(|e| TraceError::Filter(e.to_string()))
    }

    /// Whether long `parallel_chunks` calls show a progress bar on stderr
    /// ([`Progress`](crate::progress::Progress)); by default they do when stderr is a terminal,
    /// and never in a pipe or a file.
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = Some(on);
        self
    }

    /// Installs the outputs as the global subscriber.
    pub fn init(self) -> Result<TraceGuard, TraceError> {
        let filter = self.env_filter()?;
        let stderr = self.stderr.then(|| {
            tracing_subscriber::fmt::layer()
                .with_writer(io::stderr)
                .with_ansi(io::stderr().is_terminal())
        });
        let (json, json_guard) = match &self.json {
            Some(path) => {
                let (writer, guard) = tracing_appender::non_blocking(create(path)?);
                let layer = tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(writer)
                    .with_thread_ids(true)
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_span_events(FmtSpan::CLOSE);
                (Some(layer), Some(guard))
            }
            None => (None, None),
        };
        let (chrome, chrome_guard) = match &self.chrome {
            Some(path) => {
                let (layer, guard) = chrome::ChromeLayer::new(create(path)?);
                (Some(layer), Some(guard))
            }
            None => (None, None),
        };
        let progress = self
            .progress
            .unwrap_or_else(|| io::stderr().is_terminal())
            .then(crate::progress::Progress::new);
        // An empty `Vec` of layers says "nothing is enabled"; add it only when it holds one.
        let layers = (!self.layers.is_empty()).then_some(self.layers);
        tracing_subscriber::registry()
            .with(layers)
            .with(filter)
            .with(stderr)
            .with(json)
            .with(chrome)
            .with(progress)
            .try_init()
            .map_err(|_| TraceError::AlreadySet)?;
        Ok(TraceGuard {
            _json: json_guard,
            _chrome: chrome_guard,
        })
    }
}

fn create(path: &Path) -> Result<File, TraceError> {
    let wrap = |source| TraceError::File {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(wrap)?;
    }
    File::create(path).map_err(wrap)
}

/// Readable lines on stderr, filtered by `RUST_LOG` (default `info`): `Trace::new().stderr().init()`.
pub fn init() -> Result<TraceGuard, TraceError> {
    Trace::new().stderr().init()
}
