//! `lxd_inventory --list` / `--host NAME`: see the library docs.

use clap::Parser;

fn main() {
    let args = lxd_inventory::cli::Args::parse();
    std::process::exit(lxd_inventory::cli::main(&args));
}
