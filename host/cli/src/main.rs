//! `splitrx`: the splitrx command-line tool.
//!
//! Exit status: 0 on success (also for a good capture with malformed frames inside), 1 when
//! the input cannot be read (not a capture, truncated file, pcap of an unsupported link type) or output
//! fails, 2 for usage errors (clap).

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use splitrx_host::capture::CaptureReader;
use splitrx_host::inspect::{self, InspectError};
use splitrx_shared::split::SplitConfig;

#[derive(Parser, Debug)]
#[command(
    name = "splitrx",
    version,
    about = "splitrx: header/payload split receive stack tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the header-split decision over a pcap/pcapng capture and report per frame or in
    /// total.
    Inspect(InspectArgs),
    /// Run traffic end to end through a board (default: the in-process sim board; real
    /// firmware, real host stack, shared memory only) and verify every byte. With no arguments: a built-in mixed workload.
    Run(run_cmd::RunArgs),
    /// Measure the end-to-end pipeline against single-core memcpy bandwidth (same run).
    Bench(run_cmd::BenchArgs),
    /// The RoCEv2 responder: replay a capture against it and check every response.
    #[command(subcommand)]
    Roce(roce_cmd::RoceCmd),
}

mod report;
mod roce_cmd;
mod run_cmd;

#[derive(Args, Debug)]
struct InspectArgs {
    /// Capture file (pcap or pcapng; link types Ethernet, raw IP, Linux SLL/SLL2).
    file: PathBuf,
    /// Frames whose payload is <= this many bytes are not split.
    #[arg(long, value_name = "N", default_value_t = 0)]
    hds_thresh: u32,
    /// One JSON object per frame per line instead of the summary table.
    #[arg(long)]
    json: bool,
    /// Do not verify the RoCEv2 ICRC (`icrc_ok` becomes null).
    #[arg(long)]
    no_icrc: bool,
}

fn run_inspect(args: &InspectArgs) -> Result<(), InspectError> {
    let cfg = SplitConfig {
        hds_thresh: args.hds_thresh,
        verify_icrc: !args.no_icrc,
    };
    let mut reader = CaptureReader::open(&args.file)?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let summary = if args.json {
        let s = inspect::inspect(&mut reader, &cfg, |f, r| {
            inspect::write_json_line(&mut out, f, r)
        });
        // Frames reported before a read error still reach the output.
        out.flush().map_err(InspectError::Output)?;
        inspect::write_json_trailer(&mut out, &s?).map_err(InspectError::Output)?;
        return out.flush().map_err(InspectError::Output);
    } else {
        inspect::inspect(&mut reader, &cfg, |_, _| Ok(()))?
    };
    let title = inspect::title(&args.file.display().to_string(), reader.format());
    summary
        .write_table(&mut out, &title, &cfg)
        .map_err(InspectError::Output)?;
    out.flush().map_err(InspectError::Output)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Inspect(args) => run_inspect(args).map_err(|e| match e {
            // A closed pipe (`| head`) is not a failure of ours.
            InspectError::Output(ref io) if io.kind() == io::ErrorKind::BrokenPipe => None,
            other => Some(format!("{}: {other}", args.file.display())),
        }),
        Command::Run(args) => return run_cmd::run(args),
        Command::Bench(args) => return run_cmd::bench(args),
        Command::Roce(cmd) => return roce_cmd::run(cmd),
    };
    match result {
        Ok(()) | Err(None) => ExitCode::SUCCESS,
        Err(Some(msg)) => {
            eprintln!("splitrx: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
