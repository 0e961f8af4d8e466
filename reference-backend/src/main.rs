use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: block encoding and protobuf decoding make many
/// small allocations across threads, which glibc's allocator serves slowly and leaves
/// fragmented (resident memory that is never returned).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let args = reference_backend::cli::tempo_style_args(std::env::args_os());
    let opts = reference_backend::cli::Opts::parse_from(args);
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&opts.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let code = match reference_backend::cli::run(opts).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    // Everything acknowledged is in the WAL on disk: exit now instead of letting the
    // runtime wait for background work (a compaction step, an upload) to wind down.
    std::process::exit(code)
}
