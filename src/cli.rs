//! Command-line definitions (clap) only; turning them into a config happens in `config`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "edgeyard",
    version,
    about = "A container registry for edge hardware"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the registry.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is logged).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Where blobs and metadata live [default: ./edgeyard-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration file; flags given here override it.
    #[arg(long, short = 'c', value_name = "FILE", env = "EDGEYARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Serve plain HTTP instead of HTTPS (lab networks only; clients must list the
    /// registry under docker's insecure-registries).
    #[arg(long)]
    pub insecure_http: bool,
    /// Log filter in RUST_LOG syntax, e.g. `info` or `edgeyard=debug` [default: $RUST_LOG or info]
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
}
