//! The feature pipeline end to end on local disk (README's main command):
//! `cargo run --release -p delta-cli --example pipeline [-- --scale 0.1 --days 10 --out DIR]`.
//! The same as `delta pipeline`; see `delta_cli::pipeline` for the steps.

use std::process::ExitCode;

use clap::Parser;
use delta_cli::pipeline::{run, summary_text, PipelineArgs};

#[derive(Parser)]
#[command(about = "The feature pipeline on Delta: ingest → features → MERGE from the change feed → point-in-time training set → train, evaluate, save with lineage → report")]
struct Cli {
    #[command(flatten)]
    args: PipelineArgs,
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli.args.config(delta_core::TableOptions::default())).await {
        Ok(summary) => {
            print!("{}", summary_text(&summary));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
